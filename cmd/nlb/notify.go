package main

import (
	"context"
	"log/slog"

	"github.com/coreos/go-systemd/v22/daemon"
)

// notifyReady tells systemd that the mode is ready (READY=1) and, once ctx
// ends (SIGTERM or SIGINT), that it is stopping (STOPPING=1), through the
// sd_notify protocol of a Type=notify unit (dist/systemd). Without
// NOTIFY_SOCKET, as outside systemd, it does nothing. Each mode calls it
// once, when everything it serves is open: the VRRP instances' sockets,
// the listeners and the admin server, right before it runs them.
//
// None of nlb's daemons reloads on SIGHUP yet (only nlb proxy, which has
// no unit), so there is no RELOADING=1.
func notifyReady(ctx context.Context, log *slog.Logger) {
	send := func(state string) {
		if sent, err := daemon.SdNotify(false, state); err != nil {
			log.Warn("systemd notification failed", "state", state, "err", err)
		} else if sent {
			log.Debug("systemd notified", "state", state)
		}
	}
	send(daemon.SdNotifyReady)
	go func() {
		<-ctx.Done()
		send(daemon.SdNotifyStopping)
	}()
}
