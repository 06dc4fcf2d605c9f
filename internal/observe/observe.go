// Package observe watches a virtual IP from a bystander host in a network
// namespace: it timestamps every VRRP advertisement it hears and every ARP
// reply for the VIP it probes for. The demo and the failover benchmark use
// it to measure takeover time from the outside, the way a client on the LAN
// sees it, the same for nlb and keepalived.
package observe

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"runtime"
	"slices"
	"sync"
	"time"

	"github.com/mdlayher/arp"
	"github.com/vishvananda/netns"
	"golang.org/x/net/ipv4"
)

// Kind says what an Event saw.
type Kind uint8

// Event kinds.
const (
	// Advert is a VRRP advertisement heard on the group 224.0.0.18.
	Advert Kind = iota + 1
	// ARPReply is an ARP reply for the probed VIP.
	ARPReply
)

func (k Kind) String() string {
	switch k {
	case Advert:
		return "advert"
	case ARPReply:
		return "arp-reply"
	}
	return fmt.Sprintf("Kind(%d)", uint8(k))
}

// Event is one observation.
type Event struct {
	Time time.Time
	Kind Kind
	// Src is the advertisement's IP source (Advert).
	Src netip.Addr
	// VRID and Priority are the advertisement's fields (Advert).
	VRID, Priority uint8
	// MAC is the hardware address that answered for the VIP (ARPReply).
	MAC net.HardwareAddr
}

// Config says what to watch.
type Config struct {
	// Netns is the name of the bystander's network namespace.
	Netns string
	// Interface is the bystander's link to the LAN.
	Interface string
	// VIP is the IPv4 virtual address to probe with ARP requests.
	VIP netip.Addr
	// ProbeInterval is the time between ARP requests (default 2 ms).
	ProbeInterval time.Duration
}

// Observer records events until its context ends.
type Observer struct {
	mu     sync.Mutex
	events []Event
	notify chan struct{}
	wg     sync.WaitGroup
	closer []func() error
}

// Listen opens the observer's sockets inside cfg.Netns and starts watching.
// It stops, and closes its sockets, when ctx ends; call Wait to be sure.
func Listen(ctx context.Context, cfg Config) (*Observer, error) {
	if cfg.ProbeInterval <= 0 {
		cfg.ProbeInterval = 2 * time.Millisecond
	}
	if !cfg.VIP.Is4() {
		return nil, errors.New("observe: VIP must be IPv4")
	}
	var (
		ifi  *net.Interface
		vrrp *ipv4.PacketConn
		arpc *arp.Client
	)
	err := inNetns(cfg.Netns, func() error {
		var err error
		if ifi, err = net.InterfaceByName(cfg.Interface); err != nil {
			return err
		}
		c, err := net.ListenPacket("ip4:112", "0.0.0.0")
		if err != nil {
			return err
		}
		vrrp = ipv4.NewPacketConn(c)
		if err := vrrp.JoinGroup(ifi, &net.IPAddr{IP: net.IPv4(224, 0, 0, 18)}); err != nil {
			vrrp.Close()
			return err
		}
		if arpc, err = arp.Dial(ifi); err != nil {
			vrrp.Close()
			return err
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("observe: listen in %s: %w", cfg.Netns, err)
	}
	o := &Observer{notify: make(chan struct{}, 1), closer: []func() error{vrrp.Close, arpc.Close}}
	o.wg.Add(3)
	go o.readAdverts(vrrp)
	go o.readARP(arpc, cfg.VIP)
	go o.probe(ctx, arpc, cfg.VIP, cfg.ProbeInterval)
	go func() {
		<-ctx.Done()
		for _, c := range o.closer {
			_ = c()
		}
	}()
	return o, nil
}

// inNetns runs fn with the calling goroutine's thread in the named network
// namespace. Sockets created by fn stay in that namespace after it returns.
func inNetns(name string, fn func() error) error {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	orig, err := netns.Get()
	if err != nil {
		return err
	}
	defer orig.Close()
	target, err := netns.GetFromName(name)
	if err != nil {
		return err
	}
	defer target.Close()
	if err := netns.Set(target); err != nil {
		return err
	}
	ferr := fn()
	if err := netns.Set(orig); err != nil {
		// The thread is stuck in the wrong namespace: keep it locked so
		// the runtime discards it instead of reusing it.
		runtime.LockOSThread()
		return errors.Join(ferr, err)
	}
	return ferr
}

func (o *Observer) add(e Event) {
	o.mu.Lock()
	o.events = append(o.events, e)
	o.mu.Unlock()
	select {
	case o.notify <- struct{}{}:
	default:
	}
}

func (o *Observer) readAdverts(c *ipv4.PacketConn) {
	defer o.wg.Done()
	buf := make([]byte, 1500)
	for {
		n, _, src, err := c.ReadFrom(buf)
		if err != nil {
			return
		}
		now := time.Now()
		if n < 8 {
			continue
		}
		ip, ok := src.(*net.IPAddr)
		if !ok {
			continue
		}
		addr, _ := netip.AddrFromSlice(ip.IP.To4())
		o.add(Event{Time: now, Kind: Advert, Src: addr, VRID: buf[1], Priority: buf[2]})
	}
}

func (o *Observer) readARP(c *arp.Client, vip netip.Addr) {
	defer o.wg.Done()
	for {
		p, _, err := c.Read()
		if err != nil {
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				continue
			}
			return
		}
		if p.Operation == arp.OperationReply && p.SenderIP == vip {
			o.add(Event{Time: time.Now(), Kind: ARPReply, MAC: slices.Clone(p.SenderHardwareAddr)})
		}
	}
}

func (o *Observer) probe(ctx context.Context, c *arp.Client, vip netip.Addr, every time.Duration) {
	defer o.wg.Done()
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		// A failed request (ENOBUFS under load) is simply retried next tick.
		_ = c.Request(vip)
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// Events returns a copy of everything seen so far, in arrival order.
func (o *Observer) Events() []Event {
	o.mu.Lock()
	defer o.mu.Unlock()
	return slices.Clone(o.events)
}

// WaitFor returns the first event at or after index from that satisfies
// match, waiting until ctx ends. It returns the event's index too.
func (o *Observer) WaitFor(ctx context.Context, from int, match func(Event) bool) (Event, int, error) {
	for {
		o.mu.Lock()
		for i := max(from, 0); i < len(o.events); i++ {
			if match(o.events[i]) {
				e := o.events[i]
				o.mu.Unlock()
				return e, i, nil
			}
		}
		from = len(o.events)
		o.mu.Unlock()
		select {
		case <-ctx.Done():
			return Event{}, from, fmt.Errorf("observe: %w", ctx.Err())
		case <-o.notify:
		}
	}
}

// Len is the number of events seen so far; pass it to WaitFor to wait only
// for later events.
func (o *Observer) Len() int {
	o.mu.Lock()
	defer o.mu.Unlock()
	return len(o.events)
}

// Wait waits for the observer's goroutines after its context ended.
func (o *Observer) Wait() { o.wg.Wait() }
