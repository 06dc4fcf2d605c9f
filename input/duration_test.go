package input

import (
	"encoding/json"
	"strings"
	"testing"
	"time"
)

func TestDuration(t *testing.T) {
	for in, want := range map[string]time.Duration{`"250ms"`: 250 * time.Millisecond, `"1m"`: time.Minute, `"1.5s"`: 1500 * time.Millisecond, `"0s"`: 0} {
		var d Duration
		if err := json.Unmarshal([]byte(in), &d); err != nil || d.Std() != want {
			t.Errorf("%s: %v, %v; want %v", in, d, err, want)
		}
	}
	for _, in := range []string{`5`, `"5"`, `"fast"`, `null`, `{}`} {
		var d Duration
		if err := json.Unmarshal([]byte(in), &d); err == nil {
			t.Errorf("%s accepted as %v", in, d)
		} else if !strings.Contains(err.Error(), "duration") {
			t.Errorf("%s: the error does not say a duration is wanted: %v", in, err)
		}
	}
	b, err := json.Marshal(Duration(1500 * time.Millisecond))
	if err != nil || string(b) != `"1.5s"` {
		t.Errorf("marshal: %s, %v", b, err)
	}
	if s := Duration(250 * time.Millisecond).String(); s != "250ms" {
		t.Errorf("String: %s", s)
	}
}
