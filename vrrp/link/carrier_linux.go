package link

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"

	"github.com/vishvananda/netlink"
)

// WatchCarrier calls fn with the state of ifName's link (administratively
// up and with carrier) now and at every change, until ctx ends. VRRP uses
// it as keepalived uses interface tracking: a node whose link is down is
// in fault and holds no VIPs. Subscription errors go to log, which names
// the interface already.
func WatchCarrier(ctx context.Context, ifName string, log *slog.Logger, fn func(up bool)) error {
	link, err := netlink.LinkByName(ifName)
	if err != nil {
		return fmt.Errorf("carrier: %s: %w", ifName, err)
	}
	index := link.Attrs().Index
	updates := make(chan netlink.LinkUpdate, 16)
	done := make(chan struct{})
	err = netlink.LinkSubscribeWithOptions(updates, done, netlink.LinkSubscribeOptions{
		ListExisting: true,
		ErrorCallback: func(err error) {
			select {
			case <-done: // the end of the subscription, not a failure
			default:
				log.Warn("link state subscription", "err", err)
			}
		},
	})
	if err != nil {
		close(done)
		return fmt.Errorf("carrier: subscribe: %w", err)
	}
	defer func() {
		// Closing done closes the subscription's socket; its receive loop
		// then fails (EAGAIN, EBADF, a zero sender port...) and ends by
		// closing updates. Drained, it cannot block on a full channel.
		close(done)
		go func() {
			for range updates {
			}
		}()
	}()
	known, last := false, false
	for {
		select {
		case <-ctx.Done():
			return nil
		case u, ok := <-updates:
			if !ok {
				return errors.New("carrier: the link state subscription ended")
			}
			if u.Attrs().Index != index {
				continue
			}
			up := carrierUp(u.Attrs())
			if !known || up != last {
				known, last = true, up
				fn(up)
			}
		}
	}
}

// carrierUp reports a link that is up and has carrier: operational state
// up, or unknown for drivers that do not report it (RFC 2863 ifOperStatus
// as the kernel exports it).
func carrierUp(a *netlink.LinkAttrs) bool {
	return a.Flags&net.FlagUp != 0 && (a.OperState == netlink.OperUp || a.OperState == netlink.OperUnknown)
}
