// Package k8slab runs a small real Kubernetes control plane in a netlab
// namespace lab for nlb's end-to-end tests: Debian's etcd and three
// kube-apiservers built from the k8s.io/kubernetes Go module (the nested
// module in e2e/, so the main module stays lean), each API server in its own
// namespace with its own documentation-range address, plus a worker namespace
// for `nlb client` and the client programs that talk through it.
//
// Layout of a cluster with the default options (segment 0, 192.0.2.0/24):
//
//	h1-h3  controllers, API servers on 192.0.2.11-13:6443
//	h4     worker (empty; tests run `nlb client` and clients here)
//	h5     etcd on 192.0.2.15:2379 (plain HTTP, one member)
//	h6...  spare hosts (Options.Spares)
//
// The service network is 198.51.100.0/24 (the `kubernetes` Service gets
// 198.51.100.1); it is never routed in the lab, so it must merely not overlap
// the node addresses, which it does not as long as the lab has one segment.
//
// Everything is started by Start (or StartT in a test) and removed by
// Cluster.Close. The API server binary comes from BuildAPIServer, which
// caches it by the content of the e2e module.
package k8slab
