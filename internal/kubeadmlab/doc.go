// Package kubeadmlab holds the lab test of README's kubeadm recipe: `nlb
// controller` started with the arguments and capabilities of `nlb
// manifest controller --for kubeadm` on a node of an internal/k8slab
// cluster before any API server runs (as during `kubeadm init`), then the
// real kube-apiservers started. It has no code of its own.
package kubeadmlab
