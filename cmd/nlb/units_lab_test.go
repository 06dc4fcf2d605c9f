//go:build linux

package main

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"net/http"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/nlb-dev/nlb/internal/netlab"
	"github.com/nlb-dev/nlb/internal/nlbtest"
)

// systemd is not PID 1 on the test machines, so these tests run each mode
// the way its unit of dist/systemd would: the unit's ExecStart (the files
// it names replaced by the test's, $NLB_ARGS by the test's flags, as a
// user's .env file would add them), its CapabilityBoundingSet and
// AmbientCapabilities applied with setpriv, NoNewPrivileges, and
// NOTIFY_SOCKET; strace records every socket(2) the mode makes.

// unitWait bounds the waits of the unit labs.
const unitWait = 30 * time.Second

// unitRun is a unit's command line and sandbox as the lab runs it.
type unitRun struct {
	argv     []string // ExecStart, substituted
	caps     []string // CapabilityBoundingSet, as setpriv names them
	families []string // RestrictAddressFamilies
}

// readUnit reads dist/systemd/name: ExecStart with every field in subst
// replaced and $NLB_ARGS replaced by nlbArgs.
func readUnit(t *testing.T, name string, subst map[string]string, nlbArgs ...string) unitRun {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "..", "dist", "systemd", name))
	if err != nil {
		t.Fatal(err)
	}
	var u unitRun
	var bounding, ambient []string
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		k, v, ok := strings.Cut(strings.TrimSpace(sc.Text()), "=")
		if !ok || strings.HasPrefix(k, "#") {
			continue
		}
		switch k {
		case "ExecStart":
			for _, f := range strings.Fields(v) {
				switch {
				case f == "$NLB_ARGS":
					u.argv = append(u.argv, nlbArgs...)
				case subst[f] != "":
					u.argv = append(u.argv, subst[f])
				default:
					u.argv = append(u.argv, f)
				}
			}
		case "CapabilityBoundingSet":
			bounding = strings.Fields(v)
		case "AmbientCapabilities":
			ambient = strings.Fields(v)
		case "RestrictAddressFamilies":
			u.families = strings.Fields(v)
		}
	}
	if !slices.Equal(bounding, ambient) {
		t.Fatalf("%s: CapabilityBoundingSet %q and AmbientCapabilities %q differ", name, bounding, ambient)
	}
	for _, c := range bounding {
		u.caps = append(u.caps, strings.ToLower(strings.TrimPrefix(c, "CAP_")))
	}
	if len(u.argv) < 2 || !strings.HasPrefix(u.argv[0], "/") || len(u.families) == 0 {
		t.Fatalf("%s: ExecStart %q, RestrictAddressFamilies %q", name, u.argv, u.families)
	}
	return u
}

// sandboxed returns u's command line under strace (socket calls into
// straceOut) and setpriv (u's capabilities, no new privileges), with
// NOTIFY_SOCKET set to notify.
func (u unitRun) sandboxed(t *testing.T, straceOut, notify string) []string {
	t.Helper()
	for _, p := range []string{"strace", "setpriv"} {
		if _, err := exec.LookPath(p); err != nil {
			t.Fatalf("%s is missing (Debian package %s; .ci/deps installs strace)", p, map[string]string{"strace": "strace", "setpriv": "util-linux"}[p])
		}
	}
	caps := "-all"
	for _, c := range u.caps {
		caps += ",+" + c
	}
	return append([]string{"strace", "-f", "-qq", "-e", "trace=socket", "-o", straceOut,
		"setpriv", "--bounding-set=" + caps, "--inh-caps=" + caps, "--ambient-caps=" + caps, "--no-new-privs",
		"env", "NOTIFY_SOCKET=" + notify}, u.argv...)
}

// socketFamily matches the family of a socket(2) call in strace's output.
var socketFamily = regexp.MustCompile(`socket\((AF_[A-Z0-9]+),`)

// checkFamilies compares the socket families in strace's output with the
// unit's RestrictAddressFamilies: each one the mode opened must be allowed
// (else it would fail under systemd), and each one allowed must have been
// used (else the list is wider than the mode needs).
func (u unitRun) checkFamilies(t *testing.T, straceOut string) {
	t.Helper()
	b, err := os.ReadFile(straceOut)
	if err != nil {
		t.Fatal(err)
	}
	var used []string
	for _, m := range socketFamily.FindAllStringSubmatch(string(b), -1) {
		if !slices.Contains(used, m[1]) {
			used = append(used, m[1])
		}
	}
	slices.Sort(used)
	allowed := slices.Sorted(slices.Values(u.families))
	if !slices.Equal(used, allowed) {
		t.Errorf("socket families opened %q, RestrictAddressFamilies %q", used, allowed)
	}
}

// TestLabUnits runs nlb vrrp, nlb controller and nlb client as their units
// would (see above) and shows each working: the VIP on the VRRP Master;
// connections to VIP:6443 steered through the controller's proxy to the
// API server; the client's /readyz through its healthy upstreams. The
// socket families each opened are exactly its unit's
// RestrictAddressFamilies.
func TestLabUnits(t *testing.T) {
	netlab.Require(t)
	bin := nlbBinary(t)

	for _, mode := range []string{"vrrp", "controller"} {
		t.Run(mode, func(t *testing.T) {
			t.Parallel()
			lab := netlab.NewT(t, "", netlab.Options{Hosts: 2})
			h, client := lab.Hosts[0], lab.Hosts[1]
			vip := lab.VIP4(0)
			dir := t.TempDir()
			conf := filepath.Join(dir, mode+".yaml")
			if err := os.WriteFile(conf, controllerConf(h.IfName, nlbtest.K0sConfig{}, controllerVRRP(vip)), 0o600); err != nil {
				t.Fatal(err)
			}
			var args []string
			if mode == "controller" {
				startNameServer(t, h)
				api := netip.AddrPortFrom(h.Addr4, 6443).String()
				args = []string{"--backend", api, "--local-api-server", api}
			}
			u := readUnit(t, "nlb-"+mode+".service", map[string]string{"/usr/bin/nlb": bin, "/etc/nlb/" + mode + ".yaml": conf}, args...)
			s := listenNotify(t)
			straceOut := filepath.Join(dir, "strace")
			p := netlab.NewProcess("nlb "+mode, filepath.Join(dir, "nlb.log"), h, u.sandboxed(t, straceOut, s.path)...)
			if err := p.Start(); err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() {
				_ = p.Signal(syscall.SIGKILL, true, 0)
				if t.Failed() {
					t.Logf("log:\n%s", tail(p.Log()))
				}
			})
			s.await(t, "READY=1", p.Done(), p.Log)
			nlbtest.Eventually(t, unitWait, "the VIP on the only node", func() error {
				if ok, err := h.HasAddr(vip); err != nil || !ok {
					return fmt.Errorf("VIP %s on %s: %v %v", vip, h.Name, ok, err)
				}
				return nil
			})
			if mode == "controller" {
				nlbtest.Eventually(t, unitWait, "VIP:6443 through the proxy", func() error {
					who, err := ask(client, netip.AddrPortFrom(vip.Addr(), 6443))
					if err != nil || who != h.Name {
						return fmt.Errorf("VIP:6443 answered %q %v, want %s", who, err, h.Name)
					}
					return nil
				})
			}
			// SIGTERM to the group: nlb stops, strace ends and has
			// written every call.
			if err := p.Signal(syscall.SIGTERM, true, 0); err != nil {
				t.Fatal(err)
			}
			if err := p.Wait(unitWait); err != nil {
				report := netlab.GroupReport(p.Pid(), true)
				_ = p.Wait(exitWait)
				t.Fatalf("after SIGTERM: %v\n%s\nlog after SIGQUIT:\n%s", err, report, quitDump(p.Log()))
			}
			u.checkFamilies(t, straceOut)
		})
	}

	t.Run("client", func(t *testing.T) {
		t.Parallel()
		c := newFakeCluster(t)
		dir := t.TempDir()
		admin := freeTCPPort(t)
		args := []string{"--bind", "127.0.0.1", "--cache-file", filepath.Join(dir, "cache"),
			"--api-port", strconv.Itoa(freeTCPPort(t)), "--konnectivity-port", strconv.Itoa(freeTCPPort(t)),
			"--konnectivity-upstream-port", strconv.Itoa(c.konnPort), "--admin", "127.0.0.1:" + strconv.Itoa(admin)}
		u := readUnit(t, "nlb-client.service", map[string]string{"/usr/bin/nlb": bin, "/etc/nlb/client.kubeconfig": c.kubeconfig}, args...)
		s := listenNotify(t)
		straceOut := filepath.Join(dir, "strace")
		argv := u.sandboxed(t, straceOut, s.path)
		cmd := exec.Command(argv[0], argv[1:]...)
		var out netlab.SyncBuffer
		cmd.Stdout, cmd.Stderr = &out, &out
		cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		done := make(chan struct{})
		go func() { _ = cmd.Wait(); close(done) }()
		t.Cleanup(func() {
			_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
			<-done
			if t.Failed() {
				t.Logf("log:\n%s", tail(out.String()))
			}
		})
		s.await(t, "READY=1", done, out.String)
		hc := &http.Client{Timeout: unitWait}
		nlbtest.Eventually(t, unitWait, "/readyz: a healthy upstream", func() error {
			_, err := nlbtest.Get(context.Background(), hc, "http://127.0.0.1:"+strconv.Itoa(admin)+"/readyz")
			return err
		})
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGTERM)
		select {
		case <-done:
		case <-time.After(unitWait):
			// Say where it hangs: the processes' states, then every
			// goroutine's stack (SIGQUIT), printed with the log.
			report := netlab.GroupReport(cmd.Process.Pid, true)
			select {
			case <-done:
			case <-time.After(exitWait):
			}
			t.Fatalf("no exit within %v after SIGTERM:\n%s\nstandard error after SIGQUIT:\n%s", unitWait, report, quitDump(out.String()))
		}
		u.checkFamilies(t, straceOut)
	})
}

// quitDump returns the end of a log and, if the Go runtime printed its
// goroutines after a SIGQUIT, their stacks from the start (the goroutine
// stuck is usually among the first).
func quitDump(log string) string {
	i := strings.Index(log, "SIGQUIT: quit")
	if i < 0 {
		return tail(log)
	}
	dump := log[i:]
	if len(dump) > 4*logTail {
		dump = dump[:4*logTail] + "\n..."
	}
	return tail(log[:i]) + dump
}
