// Package chaoslab runs control plane load balancers on the three
// controllers of a k8slab cluster (real kube-apiservers) and breaks them
// while clients use the virtual IP: `make bench-chaos` and its smoke test.
//
// Two implementations run one after the other on the same lab, with the
// same VRRP parameters (VRID 51, advertisement interval 1 s, PASS
// authentication, VIP 192.0.2.100/24):
//
//   - nlb: `nlb controller` on h1-h3 (VRRP, the proxy on :6444, discovery,
//     steering of VIP:6443 into the proxy); clients use VIP:6443;
//   - keepalived+haproxy: keepalived with the check script and HAProxy
//     configured as in the kubeadm high-availability guide; clients use
//     VIP:8443 (HAProxy's port; the API servers bind 0.0.0.0:6443).
//
// Layout (k8slab's, plus one spare host):
//
//	h1-h3  controllers: kube-apiserver on 192.0.2.11-13:6443 and the LB
//	h4     worker: the traffic generator's connections start here
//	h5     etcd; the watch ticker writes from here straight to a live API server
//	h6     bystander (internal/observe): timestamps VRRP advertisements
//
// # Traffic
//
// New connections: every Interval (20 ms) a fresh TCP connection and TLS
// handshake (worker identity, verified against the cluster CA with server
// name "kubernetes") to VIP:port, then GET /readyz; a probe succeeds only
// with status 200 within Timeout (1 s) of its start.
//
// Watches: Watches (3) raw HTTP/1.1 watches of one ConfigMap through the
// VIP, each on its own connection. A ticker patches that ConfigMap every
// Tick (200 ms) directly on an API server other than the scenario's victim,
// so a healthy watch delivers an event every Tick. A watch that errors, ends
// or stays silent for WatchSilence (1 s) reconnects from its last resource
// version after 100 ms.
//
// # Scenarios
//
// Each scenario picks the VIP holder (the source of the VRRP
// advertisements the bystander hears) as its victim and, at t0 (FaultPhase,
// 10 ms, after one of the victim's advertisements, so that a dead master's
// backups always wait a whole Master_Down_Interval):
//
//   - kill: SIGKILLs the victim's LB processes (nlb; or keepalived and
//     HAProxy) and its kube-apiserver;
//   - apiserver: SIGKILLs only the victim's kube-apiserver;
//   - link: takes the victim's link down (netlab.Host.LinkDown);
//   - restart: a planned restart of the victim's LB: Impl.Stop (SIGTERM to
//     nlb; to keepalived, then HAProxy), run in the background so that the
//     measurements go on while it lasts; the API server stays up. nlb hands
//     the VIP over make-before-break and drains its proxy for up to 30 s;
//     keepalived drops the VIP with its priority-0 advertisement and
//     HAProxy stops at once.
//
// The fault phase lasts until at least MinHold has passed (LinkHold for
// link), the bystander hears advertisements only from another controller,
// every probe of the last CleanFor (2 s) succeeded, and (restart) the
// victim's LB has exited; or until MaxHold, after which restart still waits
// up to StopWait for the LB to exit. A stop that had to be SIGKILLed or
// did not exit cleanly is recorded (stop_error), not an error of the run:
// the scenario is measured all the same. Then, at tRecover, the recovery
// action: restart the LB and the API server as a kubelet would (kill),
// restart the API server (apiserver), bring the link up (link), start the
// LB again (restart). The scenario ends, at tEnd, when the lab has settled:
// every API server ready, the implementation healthy (Impl.Ready), one
// controller advertising with its full configured priority (and that is the
// highest priority configured), the VIP on that controller alone and on no
// other for SteadyFor (3 s), and CleanFor of clean probes.
//
// # Measurements
//
//   - requests, failed_requests: probes started in [t0-Timeout, tEnd).
//   - outage_ms: the failure bursts of the fault phase, summed. A burst
//     starts at the start of a failed probe (started at or after
//     t0-Timeout, so probes in flight at the fault count) and ends at the
//     start of the first successful probe that is followed by Quiet
//     (500 ms) without a failed probe start; failures closer together than
//     that (a round robin that still sends some connections to a dead
//     server) belong to one burst. A burst still open at tRecover ends
//     there.
//   - dup_vip_ms: time in [tRecover, tEnd] during which two or more
//     controllers held the VIP at once (addresses polled through netlink
//     every 5 ms in each namespace): after the heal (link), after the
//     SIGKILLed LB's restart (kill), after the API server's restart
//     (apiserver), after the stopped LB's start (restart). The time with
//     two holders during the fault phase (the SIGKILLed or cut-off holder
//     still has its address; a stopping nlb keeps it until the new master
//     has taken it) is dup_vip_fault_ms.
//   - leftover_vips: at tEnd, controllers other than the advertising
//     master that hold the VIP. After an implementation is torn down
//     (SIGTERM to every node, backups first), hosts still holding the VIP
//     are reported in a separate "teardown" result.
//   - failover_ms: t0 to the first advertisement from another controller.
//   - stop_ms, stop_error (restart): t0 to the end of Impl.Stop (the
//     handover and the drain), and its error; a clean stop is expected.
//   - watch_broken_ms: for each watch, the gaps between consecutive events
//     in [t0, tEnd] longer than three ticks, minus one tick each, summed;
//     the largest over the watches. watch_reconnects counts reconnects.
package chaoslab
