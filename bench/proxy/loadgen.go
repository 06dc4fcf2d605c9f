package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

const (
	// bulkChunk is the size of each write and read in the bulk test
	// (iperf3's default TCP length is 128 KiB).
	bulkChunk = 128 << 10
	// maxSamplesPerConn bounds the latency samples kept per connection
	// (uint32 nanoseconds, 2 MiB per connection).
	maxSamplesPerConn = 1 << 19
	// ioTimeout bounds every single dial, read and write of the generator.
	ioTimeout = 5 * time.Second
)

// loadResult is what the load generator process prints as one JSON line.
type loadResult struct {
	Test    string  `json:"test"`
	Gbps    float64 `json:"gbps,omitempty"`
	Rate    float64 `json:"rate,omitempty"` // completed operations per second
	P50us   float64 `json:"p50_us,omitempty"`
	P99us   float64 `json:"p99_us,omitempty"`
	Samples int     `json:"samples,omitempty"`
	Conns   int     `json:"conns,omitempty"`
	Errors  int64   `json:"errors"`
	CPU     float64 `json:"cpu"` // cores used by the proxy in the window, -1 without a proxy
	// Foreign is the CPU (cores) that processes other than the generator,
	// the backend and the proxy used in the window: how disturbed it was.
	Foreign float64 `json:"foreign_cores"`
}

// loadConfig is the load generator's command line.
type loadConfig struct {
	test     string
	addr     string
	streams  int // bulk
	workers  int // conn
	conns    int // rr, idle
	warmup   time.Duration
	duration time.Duration
	pid      int // proxy pid to sample CPU from, 0 for none
	backend  int // backend pid, for the foreign-CPU figure
}

func (c *loadConfig) flags(fs *flag.FlagSet) {
	fs.StringVar(&c.test, "test", "", "bulk, conn, rr or idle")
	fs.StringVar(&c.addr, "addr", "", "address to load")
	fs.IntVar(&c.streams, "streams", 1, "bulk streams")
	fs.IntVar(&c.workers, "workers", 32, "concurrent connect/close workers")
	fs.IntVar(&c.conns, "conns", 16, "kept-alive or idle connections")
	fs.DurationVar(&c.warmup, "warmup", 500*time.Millisecond, "time before measuring")
	fs.DurationVar(&c.duration, "duration", 3*time.Second, "measured time")
	fs.IntVar(&c.pid, "pid", 0, "proxy pid for CPU sampling")
	fs.IntVar(&c.backend, "backend-pid", 0, "backend pid")
}

func (c *loadConfig) args() []string {
	return []string{"-test", c.test, "-addr", c.addr,
		"-streams", fmt.Sprint(c.streams), "-workers", fmt.Sprint(c.workers), "-conns", fmt.Sprint(c.conns),
		"-warmup", c.warmup.String(), "-duration", c.duration.String(), "-pid", fmt.Sprint(c.pid),
		"-backend-pid", fmt.Sprint(c.backend)}
}

// runLoadgen is the load generator process. For "idle" it prints a first
// line when the connections are open and holds them until stdin closes.
func runLoadgen(ctx context.Context, args []string, stdin io.Reader, stdout io.Writer) error {
	var c loadConfig
	fs := flag.NewFlagSet("loadgen", flag.ContinueOnError)
	c.flags(fs)
	if err := fs.Parse(args); err != nil {
		return err
	}
	var (
		r   loadResult
		err error
	)
	switch c.test {
	case "bulk":
		r, err = loadBulk(ctx, c)
	case "conn":
		r, err = loadConn(ctx, c)
	case "rr":
		r, err = loadRR(ctx, c)
	case "idle":
		return loadIdle(ctx, c, stdin, stdout)
	default:
		return fmt.Errorf("unknown test %q", c.test)
	}
	if err != nil {
		return err
	}
	return json.NewEncoder(stdout).Encode(r)
}

// window is the measured interval of a test and the proxy's CPU use in it.
type window struct {
	start, end time.Time
	cpu        float64 // cores, -1 if unknown
	foreign    float64 // cores used by other processes, -1 if unknown
	done       chan struct{}
}

// cpuSample is the machine's busy CPU time and that of the bench's own
// processes, in seconds.
type cpuSample struct {
	busy, ours float64
	ok         bool
}

func sampleCPU(pids ...int) cpuSample {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return cpuSample{}
	}
	idle, total, ok := parseProcStatCPU(b)
	if !ok {
		return cpuSample{}
	}
	s := cpuSample{busy: (total - idle) / clockTicks, ok: true}
	for _, pid := range pids {
		if pid <= 0 {
			continue
		}
		c, err := procCPUSeconds(pid)
		if err != nil {
			return cpuSample{}
		}
		s.ours += c
	}
	return s
}

// measureWindow starts the measured interval warmup from now, samples the
// proxy's CPU time at both ends and closes done at the end.
func measureWindow(ctx context.Context, c loadConfig) *window {
	w := &window{start: time.Now().Add(c.warmup), cpu: -1, foreign: -1, done: make(chan struct{})}
	w.end = w.start.Add(c.duration)
	self := os.Getpid()
	go func() {
		defer close(w.done)
		if !sleepUntil(ctx, w.start) {
			return
		}
		c0, err0 := procCPUSeconds(c.pid)
		s0 := sampleCPU(self, c.backend, c.pid)
		if !sleepUntil(ctx, w.end) {
			return
		}
		c1, err1 := procCPUSeconds(c.pid)
		s1 := sampleCPU(self, c.backend, c.pid)
		if c.pid > 0 && err0 == nil && err1 == nil {
			w.cpu = (c1 - c0) / c.duration.Seconds()
		}
		if s0.ok && s1.ok {
			w.foreign = max(0, (s1.busy-s0.busy)-(s1.ours-s0.ours)) / c.duration.Seconds()
		}
	}()
	return w
}

func sleepUntil(ctx context.Context, t time.Time) bool {
	tm := time.NewTimer(time.Until(t))
	defer tm.Stop()
	select {
	case <-tm.C:
		return true
	case <-ctx.Done():
		return false
	}
}

func dial(ctx context.Context, addr string) (*net.TCPConn, error) {
	d := net.Dialer{Timeout: ioTimeout}
	c, err := d.DialContext(ctx, "tcp4", addr)
	if err != nil {
		return nil, err
	}
	return c.(*net.TCPConn), nil
}

// loadBulk writes bulkChunk-sized buffers on c.streams connections to a
// sink and counts the bytes written inside the window.
func loadBulk(ctx context.Context, c loadConfig) (loadResult, error) {
	conns := make([]*net.TCPConn, 0, c.streams)
	defer func() {
		for _, cn := range conns {
			cn.Close()
		}
	}()
	for range c.streams {
		cn, err := dial(ctx, c.addr)
		if err != nil {
			return loadResult{}, err
		}
		conns = append(conns, cn)
	}
	var total, errs atomic.Int64
	var stopping atomic.Bool
	var wg sync.WaitGroup
	for _, cn := range conns {
		wg.Go(func() {
			buf := make([]byte, bulkChunk)
			buf[0] = modeSink
			for !stopping.Load() {
				cn.SetWriteDeadline(time.Now().Add(ioTimeout))
				n, err := cn.Write(buf)
				total.Add(int64(n))
				if err != nil {
					if !stopping.Load() {
						errs.Add(1)
					}
					return
				}
			}
		})
	}
	w := measureWindow(ctx, c)
	var b0, b1 int64
	var t0, t1 time.Time
	if sleepUntil(ctx, w.start) {
		b0, t0 = total.Load(), time.Now()
		if sleepUntil(ctx, w.end) {
			b1, t1 = total.Load(), time.Now()
		}
	}
	stopping.Store(true)
	for _, cn := range conns {
		cn.SetWriteDeadline(time.Now())
	}
	wg.Wait()
	<-w.done
	if ctx.Err() != nil {
		return loadResult{}, ctx.Err()
	}
	return loadResult{
		Test:    "bulk",
		Gbps:    float64(b1-b0) * 8 / 1e9 / t1.Sub(t0).Seconds(),
		Conns:   c.streams,
		Errors:  errs.Load(),
		CPU:     w.cpu,
		Foreign: w.foreign,
	}, nil
}

// loadConn runs c.workers loops of connect, 64-byte request, 64-byte reply,
// wait for the server's close, close; it counts cycles completed inside the
// window.
func loadConn(ctx context.Context, c loadConfig) (loadResult, error) {
	w := measureWindow(ctx, c)
	var done, errs atomic.Int64
	var wg sync.WaitGroup
	for range c.workers {
		wg.Go(func() {
			var msg, rep [msgSize]byte
			msg[0] = modeOnce
			for ctx.Err() == nil && time.Now().Before(w.end) {
				if err := connOnce(ctx, c.addr, msg[:], rep[:]); err != nil {
					now := time.Now()
					if now.After(w.start) && now.Before(w.end) {
						errs.Add(1)
					}
					time.Sleep(time.Millisecond) // no hot loop against a broken proxy
					continue
				}
				if now := time.Now(); now.After(w.start) && now.Before(w.end) {
					done.Add(1)
				}
			}
		})
	}
	wg.Wait()
	<-w.done
	if ctx.Err() != nil {
		return loadResult{}, ctx.Err()
	}
	return loadResult{
		Test:    "conn",
		Rate:    float64(done.Load()) / c.duration.Seconds(),
		Conns:   c.workers,
		Errors:  errs.Load(),
		CPU:     w.cpu,
		Foreign: w.foreign,
	}, nil
}

func connOnce(ctx context.Context, addr string, msg, rep []byte) error {
	cn, err := dial(ctx, addr)
	if err != nil {
		return err
	}
	defer cn.Close()
	cn.SetDeadline(time.Now().Add(ioTimeout))
	if _, err := cn.Write(msg); err != nil {
		return err
	}
	if _, err := io.ReadFull(cn, rep); err != nil {
		return err
	}
	// The server closes after its reply; wait for that FIN so that the
	// client is the passive closer.
	var one [1]byte
	if n, err := cn.Read(one[:]); n != 0 || !errors.Is(err, io.EOF) {
		return fmt.Errorf("expected EOF after the reply, got %d bytes, %v", n, err)
	}
	return nil
}

// loadRR runs c.conns kept-alive connections, each sending a 64-byte
// message and waiting for its 64-byte echo in a closed loop, and records
// the round-trip time of every exchange inside the window.
func loadRR(ctx context.Context, c loadConfig) (loadResult, error) {
	conns := make([]*net.TCPConn, 0, c.conns)
	defer func() {
		for _, cn := range conns {
			cn.Close()
		}
	}()
	var msg [msgSize]byte
	msg[0] = modeEcho
	for range c.conns {
		cn, err := dial(ctx, c.addr)
		if err != nil {
			return loadResult{}, err
		}
		conns = append(conns, cn)
		var rep [msgSize]byte
		cn.SetDeadline(time.Now().Add(ioTimeout))
		if _, err := cn.Write(msg[:]); err != nil {
			return loadResult{}, err
		}
		if _, err := io.ReadFull(cn, rep[:]); err != nil {
			return loadResult{}, err
		}
	}
	w := measureWindow(ctx, c)
	samples := make([][]uint32, len(conns))
	var errs, dropped atomic.Int64
	var wg sync.WaitGroup
	for i, cn := range conns {
		wg.Go(func() {
			s := make([]uint32, 0, maxSamplesPerConn)
			var m, rep [msgSize]byte
			m[0] = 'x'
			for ctx.Err() == nil {
				t := time.Now()
				if !t.Before(w.end) {
					break
				}
				cn.SetDeadline(t.Add(ioTimeout))
				if _, err := cn.Write(m[:]); err != nil {
					errs.Add(1)
					break
				}
				if _, err := io.ReadFull(cn, rep[:]); err != nil {
					errs.Add(1)
					break
				}
				if t.After(w.start) {
					if len(s) < cap(s) {
						s = append(s, uint32(min(time.Since(t), time.Duration(1<<32-1))))
					} else {
						dropped.Add(1)
					}
				}
			}
			samples[i] = s
		})
	}
	wg.Wait()
	<-w.done
	if ctx.Err() != nil {
		return loadResult{}, ctx.Err()
	}
	var all []uint32
	for _, s := range samples {
		all = append(all, s...)
	}
	slices.Sort(all)
	if len(all) == 0 {
		return loadResult{}, errors.New("no latency samples")
	}
	return loadResult{
		Test:    "rr",
		Rate:    float64(len(all)+int(dropped.Load())) / c.duration.Seconds(),
		P50us:   float64(percentile(all, 0.50)) / 1e3,
		P99us:   float64(percentile(all, 0.99)) / 1e3,
		Samples: len(all),
		Conns:   c.conns,
		Errors:  errs.Load(),
		CPU:     w.cpu,
		Foreign: w.foreign,
	}, nil
}

// idleDialers bounds the concurrent dials when opening idle connections.
const idleDialers = 64

// loadIdle opens c.conns connections, does one 64-byte echo on each so the
// whole path is established and has carried data, prints a result line and
// holds the connections until stdin closes or ctx ends.
func loadIdle(ctx context.Context, c loadConfig, stdin io.Reader, stdout io.Writer) error {
	conns := make([]*net.TCPConn, c.conns)
	defer func() {
		for _, cn := range conns {
			if cn != nil {
				cn.Close()
			}
		}
	}()
	idx := make(chan int)
	var errs atomic.Int64
	var wg sync.WaitGroup
	for range idleDialers {
		wg.Go(func() {
			var msg, rep [msgSize]byte
			msg[0] = modeEcho
			for i := range idx {
				cn, err := dial(ctx, c.addr)
				if err != nil {
					errs.Add(1)
					continue
				}
				cn.SetDeadline(time.Now().Add(ioTimeout))
				_, err = cn.Write(msg[:])
				if err == nil {
					_, err = io.ReadFull(cn, rep[:])
				}
				cn.SetDeadline(time.Time{})
				if err != nil {
					errs.Add(1)
					cn.Close()
					continue
				}
				conns[i] = cn
			}
		})
	}
	// Stop early when the path refuses connections (for example a proxy
	// out of fds), so that the test stays bounded in time.
	maxErrs := int64(max(100, c.conns/50))
	for i := range c.conns {
		if ctx.Err() != nil || errs.Load() > maxErrs {
			break
		}
		idx <- i
	}
	close(idx)
	wg.Wait()
	if ctx.Err() != nil {
		return ctx.Err()
	}
	open := 0
	for _, cn := range conns {
		if cn != nil {
			open++
		}
	}
	if err := json.NewEncoder(stdout).Encode(loadResult{Test: "idle", Conns: open, Errors: errs.Load(), CPU: -1}); err != nil {
		return err
	}
	held := make(chan struct{})
	go func() {
		_, _ = io.Copy(io.Discard, stdin)
		close(held)
	}()
	select {
	case <-held:
	case <-ctx.Done():
	}
	return nil
}
