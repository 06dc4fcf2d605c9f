package k8s

import (
	"bytes"
	"os"
	"slices"
	"testing"

	discoveryv1 "k8s.io/api/discovery/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	"k8s.io/apimachinery/pkg/runtime/serializer/json"
	"k8s.io/client-go/kubernetes/scheme"
)

// TestRBAC decodes rbac.yaml strictly and checks that it grants exactly
// get, list and watch on endpointslices in the service's namespace, through
// a namespaced Role.
func TestRBAC(t *testing.T) {
	b, err := os.ReadFile("rbac.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var role *rbacv1.Role
	var binding *rbacv1.RoleBinding
	dec := json.NewSerializerWithOptions(json.DefaultMetaFactory, scheme.Scheme, scheme.Scheme,
		json.SerializerOptions{Yaml: true, Strict: true})
	for _, doc := range bytes.Split(b, []byte("\n---\n")) {
		obj, gvk, err := dec.Decode(doc, nil, nil)
		if err != nil {
			t.Fatalf("decode: %v", err)
		}
		switch o := obj.(type) {
		case *rbacv1.Role:
			role = o
		case *rbacv1.RoleBinding:
			binding = o
		default:
			t.Errorf("unexpected %v: a ClusterRole or anything else grants more than needed", gvk)
		}
	}
	if role == nil || binding == nil {
		t.Fatalf("want a Role and a RoleBinding, got %v and %v", role, binding)
	}
	if role.Namespace != DefaultNamespace || binding.Namespace != DefaultNamespace {
		t.Errorf("namespaces %q, %q; want %q", role.Namespace, binding.Namespace, DefaultNamespace)
	}
	want := []rbacv1.PolicyRule{{
		APIGroups: []string{discoveryv1.GroupName},
		Resources: []string{"endpointslices"},
		Verbs:     []string{"get", "list", "watch"},
	}}
	if !slices.EqualFunc(role.Rules, want, func(a, b rbacv1.PolicyRule) bool {
		return slices.Equal(a.APIGroups, b.APIGroups) && slices.Equal(a.Resources, b.Resources) &&
			slices.Equal(a.Verbs, b.Verbs) && len(a.ResourceNames) == 0 && len(a.NonResourceURLs) == 0
	}) {
		t.Errorf("rules %+v, want %+v", role.Rules, want)
	}
	if r := binding.RoleRef; r.Kind != "Role" || r.Name != role.Name || r.APIGroup != rbacv1.GroupName {
		t.Errorf("roleRef %+v does not name the Role %q", r, role.Name)
	}
	if len(binding.Subjects) == 0 {
		t.Error("no subjects")
	}
}
