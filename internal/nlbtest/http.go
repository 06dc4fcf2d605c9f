package nlbtest

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
)

// MaxBody bounds the bodies Get reads.
const MaxBody = 1 << 20

// Get GETs url with c and returns the body (at most MaxBody). An answer
// other than 200 OK is an error naming the status and the body's end.
func Get(ctx context.Context, c *http.Client, url string) ([]byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, fmt.Errorf("GET %s: %w", url, err)
	}
	resp, err := c.Do(req)
	if err != nil {
		return nil, fmt.Errorf("GET %s: %w", url, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, MaxBody))
	if err != nil {
		return nil, fmt.Errorf("GET %s: %w", url, err)
	}
	if resp.StatusCode != http.StatusOK {
		end := strings.TrimSpace(string(body[max(0, len(body)-512):]))
		return nil, fmt.Errorf("GET %s: %s: %s", url, resp.Status, end)
	}
	return body, nil
}

// GetJSON is Get decoding the JSON body into v.
func GetJSON(ctx context.Context, c *http.Client, url string, v any) error {
	body, err := Get(ctx, c, url)
	if err != nil {
		return err
	}
	if err := json.Unmarshal(body, v); err != nil {
		return fmt.Errorf("GET %s: %w", url, err)
	}
	return nil
}
