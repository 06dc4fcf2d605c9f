package keepalived

import (
	"bytes"
	"sync"
)

// lockedWriter is a bytes.Buffer safe for the concurrent writes of a child
// process's stdout and stderr copiers and for reads by tests.
type lockedWriter struct {
	mu  sync.Mutex
	buf *bytes.Buffer
}

func (w *lockedWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.buf.Write(p)
}

func (w *lockedWriter) String() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.buf.String()
}
