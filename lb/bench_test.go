package lb

import (
	"context"
	"io"
	"net"
	"testing"
	"time"
)

// BenchmarkThroughput pushes one TCP stream over loopback through: nothing
// (direct), this proxy, Go's plain io.Copy between bare conns (k0s's
// proxy: splice, pipes held for life) and a userspace io.Copy (conns
// wrapped, no splice). Source, proxy and sink share this process, so the
// figures compare data paths, not absolute capacity:
//
//	go test -run '^$' -bench Throughput -benchtime 4s ./lb
func BenchmarkThroughput(b *testing.B) {
	for _, mode := range []string{"direct", "nlb", "iocopy-splice", "iocopy-userspace"} {
		b.Run(mode, func(b *testing.B) {
			sinkLn, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				b.Fatal(err)
			}
			defer sinkLn.Close()
			got := make(chan int64, 1)
			go func() {
				c, err := sinkLn.Accept()
				if err != nil {
					return
				}
				n, _ := io.Copy(io.Discard, c)
				c.Close()
				got <- n
			}()
			addr := sinkLn.Addr().String()
			switch mode {
			case "nlb":
				p, err := New(Config{Listen: []string{"127.0.0.1:0"}, Backends: []string{addr},
					HealthCheck: HealthCheck{Type: CheckNone}}, Options{})
				if err != nil {
					b.Fatal(err)
				}
				if err := p.Listen(context.Background()); err != nil {
					b.Fatal(err)
				}
				ctx, cancel := context.WithCancel(context.Background())
				go p.Serve(ctx)
				defer func() {
					cancel()
					sctx, c := context.WithTimeout(context.Background(), time.Second)
					p.Shutdown(sctx)
					c()
				}()
				addr = p.Addrs()[0].String()
			case "iocopy-splice", "iocopy-userspace":
				addr = naiveProxy(b, addr, mode == "iocopy-userspace")
			}
			c, err := net.Dial("tcp", addr)
			if err != nil {
				b.Fatal(err)
			}
			buf := make([]byte, 1<<20)
			b.SetBytes(int64(len(buf)))
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				if _, err := c.Write(buf); err != nil {
					b.Fatal(err)
				}
			}
			c.(*net.TCPConn).CloseWrite()
			if n := <-got; n != int64(b.N)*int64(len(buf)) {
				b.Fatalf("sink got %d bytes, want %d", n, int64(b.N)*int64(len(buf)))
			}
			b.StopTimer()
			c.Close()
		})
	}
}

// hide hides a conn's ReadFrom/WriteTo so io.Copy uses a 32 KiB buffer.
type hide struct{ net.Conn }

func naiveProxy(b *testing.B, backend string, userspace bool) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			s, err := net.Dial("tcp", backend)
			if err != nil {
				c.Close()
				continue
			}
			var dst, src net.Conn = s, c
			if userspace {
				dst, src = hide{s}, hide{c}
			}
			go func() {
				io.Copy(dst, src)
				s.(*net.TCPConn).CloseWrite()
			}()
		}
	}()
	return ln.Addr().String()
}
