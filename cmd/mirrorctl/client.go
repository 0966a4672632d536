package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"

	"github.com/blobswarm/blobswarm/mirror/adminapi"
)

// client calls the mirror's admin API.
type client struct {
	base  string
	token string
}

func (c *client) mirrorURL() (string, error) {
	u, err := url.Parse(c.base)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return "", fmt.Errorf("--mirror %q: want an http:// or https:// URL", c.base)
	}
	return strings.TrimSuffix(c.base, "/"), nil
}

func (c *client) do(ctx context.Context, method, path string, body any) (*http.Response, error) {
	base, err := c.mirrorURL()
	if err != nil {
		return nil, err
	}
	var r io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return nil, err
		}
		r = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, base+path, r)
	if err != nil {
		return nil, err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, fmt.Errorf("mirror at %s: %w", base, err)
	}
	if resp.StatusCode != http.StatusOK {
		defer resp.Body.Close()
		return nil, apiError(resp)
	}
	return resp, nil
}

// apiError reads the admin API's error body, or says what came instead
// (a mirror too old to have the admin API answers 404 without one).
func apiError(resp *http.Response) error {
	var eb adminapi.ErrorBody
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	if json.Unmarshal(b, &eb) == nil && len(eb.Errors) > 0 {
		return fmt.Errorf("mirror refused (HTTP %d): %w", resp.StatusCode, eb)
	}
	return fmt.Errorf("mirror answered HTTP %d: %s", resp.StatusCode, strings.TrimSpace(string(b)))
}

func (c *client) status(ctx context.Context) (adminapi.Status, error) {
	var st adminapi.Status
	resp, err := c.do(ctx, http.MethodGet, adminapi.StatusPath, nil)
	if err != nil {
		return st, err
	}
	defer resp.Body.Close()
	if err := json.NewDecoder(resp.Body).Decode(&st); err != nil {
		return st, fmt.Errorf("read status: %w", err)
	}
	return st, nil
}

// prefetch streams one image's events to fn and returns the summary.
func (c *client) prefetch(ctx context.Context, req adminapi.PrefetchRequest, fn func(adminapi.Event)) (adminapi.Event, error) {
	resp, err := c.do(ctx, http.MethodPost, adminapi.PrefetchPath, req)
	if err != nil {
		return adminapi.Event{}, err
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		var ev adminapi.Event
		if err := json.Unmarshal(sc.Bytes(), &ev); err != nil {
			return adminapi.Event{}, fmt.Errorf("bad event from the mirror: %w", err)
		}
		if ev.Type == adminapi.EventSummary {
			return ev, nil
		}
		fn(ev)
	}
	if err := sc.Err(); err != nil {
		return adminapi.Event{}, fmt.Errorf("prefetch of %s cut off: %w", req.Image, err)
	}
	return adminapi.Event{}, fmt.Errorf("prefetch of %s cut off before the mirror's summary", req.Image)
}
