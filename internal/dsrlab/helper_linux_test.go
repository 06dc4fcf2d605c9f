//go:build linux

package dsrlab

import (
	"encoding/json"
	"fmt"
	"os"
	"testing"
	"time"

	"github.com/nlb-dev/nlb/ebpf/xdplb"
)

// helperArg, as the test binary's first argument, makes it the load
// balancer's stand-in nlb process (run in h1's namespace, then SIGKILLed):
// it attaches the datapath pinned, configures it as Master, says "ready"
// and waits to be killed (at most helperLife).
const (
	helperArg  = "dsrlab-lb-helper"
	helperLife = 5 * time.Minute
)

// helperConfig is what the helper is given, as a JSON file.
type helperConfig struct {
	Attach   xdplb.AttachOptions
	MAC      []byte
	Services []xdplb.Service
}

func TestMain(m *testing.M) {
	if len(os.Args) == 3 && os.Args[1] == helperArg {
		if err := helperMain(os.Args[2]); err != nil {
			fmt.Println("helper:", err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

func helperMain(path string) error {
	b, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	var c helperConfig
	if err := json.Unmarshal(b, &c); err != nil {
		return err
	}
	d, err := xdplb.Attach(c.Attach)
	if err != nil {
		return err
	}
	if err := d.SetMAC(c.MAC); err != nil {
		return err
	}
	for _, s := range c.Services {
		if err := d.SetService(s); err != nil {
			return err
		}
	}
	if err := d.SetMaster(true); err != nil {
		return err
	}
	fmt.Printf("ready: mode %s\n", d.Mode())
	time.Sleep(helperLife)
	return d.Remove()
}
