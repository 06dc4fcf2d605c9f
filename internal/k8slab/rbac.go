package k8slab

import (
	"context"
	"fmt"
	"time"

	"github.com/nlb-dev/nlb/internal/nlbtest"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
)

// workerRole is the name of the Roles and RoleBindings Start creates.
const workerRole = "nlb-e2e-worker"

// grantWorker creates TestNamespace and the Roles the worker identity
// needs: discovery of the API servers through `nlb client` (EndpointSlices,
// Endpoints and Services in default) and a client program listing and
// watching ConfigMaps in TestNamespace.
func (c *Cluster) grantWorker(ctx context.Context) error {
	cs, err := c.Client(Admin, c.EtcdHost, c.Controllers[0].Server)
	if err != nil {
		return err
	}
	read := []string{"get", "list", "watch"}
	objs := []struct {
		ns    string
		rules []rbacv1.PolicyRule
	}{
		{"default", []rbacv1.PolicyRule{
			{APIGroups: []string{"discovery.k8s.io"}, Resources: []string{"endpointslices"}, Verbs: read},
			{APIGroups: []string{""}, Resources: []string{"endpoints", "services"}, Verbs: read},
		}},
		{TestNamespace, []rbacv1.PolicyRule{
			{APIGroups: []string{""}, Resources: []string{"configmaps"}, Verbs: read},
		}},
	}
	return nlbtest.Poll(ctx, 500*time.Millisecond, "k8slab: grant the worker identity", func() error {
		if err := ensure(cs.CoreV1().Namespaces().Create(ctx,
			&corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: TestNamespace}}, metav1.CreateOptions{})); err != nil {
			return err
		}
		for _, o := range objs {
			if err := grant(ctx, cs, o.ns, o.rules); err != nil {
				return err
			}
		}
		return nil
	})
}

func grant(ctx context.Context, cs kubernetes.Interface, ns string, rules []rbacv1.PolicyRule) error {
	meta := metav1.ObjectMeta{Name: workerRole, Namespace: ns}
	if err := ensure(cs.RbacV1().Roles(ns).Create(ctx,
		&rbacv1.Role{ObjectMeta: meta, Rules: rules}, metav1.CreateOptions{})); err != nil {
		return err
	}
	return ensure(cs.RbacV1().RoleBindings(ns).Create(ctx, &rbacv1.RoleBinding{
		ObjectMeta: meta,
		RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "Role", Name: workerRole},
		Subjects:   []rbacv1.Subject{{APIGroup: rbacv1.GroupName, Kind: rbacv1.UserKind, Name: WorkerUser}},
	}, metav1.CreateOptions{}))
}

// ensure accepts a create that found the object already there.
func ensure[T any](_ T, err error) error {
	if err != nil && !apierrors.IsAlreadyExists(err) {
		return fmt.Errorf("k8slab: %w", err)
	}
	return nil
}
