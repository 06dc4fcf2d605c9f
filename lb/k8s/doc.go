// Package k8s finds the Kubernetes API servers that nlb balances, and reads
// the kubeconfig files nlb uses to reach them.
//
// It imports nothing from k8s.io: client-go's clients, informers and
// clientcmd, with apimachinery's schemes and serializers, were most of the
// binary pages and heap of `nlb client`, which runs on every worker. What
// discovery needs is two GETs (a list, then a watch from its resource
// version) and the JSON of a few EndpointSlice fields; what nlb reads of a
// kubeconfig is a cluster and a user.
//
// # Discovery
//
// [Discovery] watches the EndpointSlices (discovery.k8s.io/v1) of the service
// default/kubernetes, which kube-apiserver itself maintains with one endpoint
// per API server. k0s watches the deprecated Endpoints object of the same
// service for its control-plane load balancer (cplb-reconciler) and for the
// worker profiles that feed the node-local load balancer; EndpointSlices carry
// the same addresses plus readiness, and both address families.
//
// Discovery lists and watches as client-go's reflector does: the first list
// from the API server's cache (resourceVersion=0), a watch from the list's
// resource version with bookmarks and a server-side timeout of 5 to 10
// minutes, a new watch when the server ends one, a new list after a failure
// (from the latest state after 410 Expired), waiting 0.8 s doubling to 30 s
// (with jitter) between failures. Requests go over HTTP/2, whose PINGs after
// 30 s of silence (15 s timeout) abandon a watch on a dead server.
//
// All slices labelled kubernetes.io/service-name=<service> are merged. An
// endpoint counts when conditions.ready is true or unset (the EndpointSlice API
// says unset means ready) and conditions.terminating is not true; addresses of
// FQDN slices are ignored. The port is the slice port named Config.PortName
// ("https"), unless Config.Port overrides it: k0s's CPLB ignores the endpoint
// ports and dials spec.api.port, and the NLLB sends konnectivity (8132) to
// the same hosts.
//
// As in k0s, an empty list is never applied ("refusing to apply an empty API
// server list"): the previous one stays. The last good list is kept in an
// optional cache file, so that a restarted nlb can balance before any API
// server answers.
//
// # Permissions
//
// Discovery lists and watches endpointslices in one namespace with a label
// selector. RBAC cannot restrict list or watch by label, so the least
// privilege is a namespaced Role in "default" granting get, list and watch on
// endpointslices.discovery.k8s.io (not a ClusterRole); rbac.yaml in this
// package's directory holds it with a RoleBinding.
//
// # Kubeconfig
//
// [LoadKubeconfig] reads a kubeconfig (clientcmd's v1 format, with its file
// references resolved against the file's directory as kubectl does) and
// exposes what nlb needs: the current server, a [RESTConfig], the CA pool,
// the client certificate, and a copy with only the server replaced (what
// k0s's NLLB does to point the kubelet at the local load balancer). Client
// certificates, bearer tokens (inline or from a file, re-read as client-go
// does), basic authentication and impersonation are supported; credential
// plugins (exec, auth-provider) are not, and RESTConfig says so.
package k8s
