package hub

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
)

var (
	// ErrNotFound is matched (errors.Is) by hub answers 404: no such
	// repository, revision or file.
	ErrNotFound = errors.New("not found on the hub")
	// ErrAuth is matched (errors.Is) by hub answers 401 and 403: a private
	// or gated repository that needs HF_TOKEN, or a token without access.
	ErrAuth = errors.New("not authorized by the hub")
)

// StatusError is a hub answer with an unexpected HTTP status.
type StatusError struct {
	URL        string // request URL without its query
	StatusCode int
	Code       string // the hub's X-Error-Code header, e.g. "RepoNotFound", "GatedRepo"
	Message    string // the hub's X-Error-Message header or error body
	RetryAfter time.Duration
	Repo       string
	Revision   string
	File       string // empty for the model API
	TokenSet   bool   // whether the request carried a token
}

func (e *StatusError) Error() string {
	what := e.Repo
	if e.File != "" {
		what = e.File + " of " + e.Repo
	}
	var b strings.Builder
	fmt.Fprintf(&b, "hub: %s (revision %q): %d %s", what, e.Revision, e.StatusCode, http.StatusText(e.StatusCode))
	switch {
	case e.StatusCode == http.StatusUnauthorized:
		if e.TokenSet {
			b.WriteString(": the repository does not exist, or it is private or gated and the token in HF_TOKEN was not accepted")
		} else {
			b.WriteString(": the repository does not exist, or it is private or gated and needs an access token: set HF_TOKEN")
		}
	case e.StatusCode == http.StatusForbidden:
		if e.TokenSet {
			b.WriteString(": access is restricted (gated or private); accept the model's terms on the hub with the account whose token is in HF_TOKEN")
		} else {
			b.WriteString(": access is restricted (gated or private); accept the model's terms on the hub and set HF_TOKEN")
		}
	case e.StatusCode == http.StatusNotFound:
		switch {
		case e.Code == "RevisionNotFound":
			fmt.Fprintf(&b, ": no revision %q in %s", e.Revision, e.Repo)
		case e.Code == "EntryNotFound" || e.File != "" && e.Code != "RepoNotFound":
			fmt.Fprintf(&b, ": no file %s in %s at that revision", e.File, e.Repo)
		default:
			fmt.Fprintf(&b, ": no repository %s (or no revision %q)", e.Repo, e.Revision)
		}
	}
	if e.Message != "" {
		fmt.Fprintf(&b, " [hub says: %s]", e.Message)
	}
	if e.URL != "" {
		fmt.Fprintf(&b, " (%s)", e.URL)
	}
	return b.String()
}

// Is makes a StatusError match ErrNotFound or ErrAuth.
func (e *StatusError) Is(target error) bool {
	switch target {
	case ErrNotFound:
		return e.StatusCode == http.StatusNotFound
	case ErrAuth:
		return e.StatusCode == http.StatusUnauthorized || e.StatusCode == http.StatusForbidden
	}
	return false
}

func (e *StatusError) transient() bool {
	return e.StatusCode >= 500 || e.StatusCode == http.StatusTooManyRequests || e.StatusCode == http.StatusRequestTimeout
}

// newStatusError describes resp; it reads (a bounded part of) its body.
func newStatusError(resp *http.Response, repo, revision, file string, tokenSet bool) *StatusError {
	e := &StatusError{
		URL:        redact(resp.Request.URL.String()),
		StatusCode: resp.StatusCode,
		Code:       resp.Header.Get("X-Error-Code"),
		Message:    resp.Header.Get("X-Error-Message"),
		Repo:       repo,
		Revision:   revision,
		File:       file,
		TokenSet:   tokenSet,
		RetryAfter: parseRetryAfter(resp.Header.Get("Retry-After"), time.Now()),
	}
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
	if e.Message == "" {
		var j struct {
			Error string `json:"error"`
		}
		if json.Unmarshal(body, &j) == nil && j.Error != "" {
			e.Message = j.Error
		}
	}
	e.Message = truncate(strings.TrimSpace(e.Message))
	return e
}

// parseRetryAfter reads a Retry-After header in seconds or as an HTTP date.
func parseRetryAfter(v string, now time.Time) time.Duration {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0
	}
	if n, err := strconv.ParseInt(v, 10, 64); err == nil {
		if n <= 0 {
			return 0
		}
		if n > int64(maxRetryAfter/time.Second) {
			return maxRetryAfter
		}
		return time.Duration(n) * time.Second
	}
	if t, err := http.ParseTime(v); err == nil {
		d := t.Sub(now)
		if d < 0 {
			return 0
		}
		return min(d, maxRetryAfter)
	}
	return 0
}

// redact drops the query of a URL: CDN URLs carry signatures.
func redact(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return "(unparsable URL)"
	}
	u.RawQuery = ""
	u.User = nil
	return u.String()
}

// HashError reports a downloaded file whose content does not match the hash
// the hub lists for it.
type HashError struct {
	File     string
	Repo     string
	Algo     string // "sha256" or "git-sha1"
	Expected string
	Got      string
}

func (e *HashError) Error() string {
	return fmt.Sprintf("hub: %s of %s failed verification: %s mismatch: expected %s, got %s (the partial download was deleted)",
		e.File, e.Repo, e.Algo, e.Expected, e.Got)
}

// transportError marks an error of the network or of the connection, which
// a retry may cure.
type transportError struct{ err error }

func (e *transportError) Error() string { return e.err.Error() }
func (e *transportError) Unwrap() error { return e.err }

// netErr marks err as a transport error unless ctx was cancelled.
func netErr(ctx context.Context, err error) error {
	if err == nil {
		return nil
	}
	if ctx.Err() != nil {
		return ctx.Err()
	}
	return &transportError{err}
}

// resumeError marks a server answer to a Range request that forces a
// restart; the partial file has been discarded.
type resumeError struct{ msg string }

func (e *resumeError) Error() string { return e.msg }

func retryable(err error) bool {
	var te *transportError
	var se *StatusError
	var re *resumeError
	var dns *net.DNSError
	switch {
	case errors.As(err, &dns) && dns.IsNotFound:
		return false // no such host: offline, or a wrong endpoint
	case errors.As(err, &te), errors.As(err, &re):
		return true
	case errors.As(err, &se):
		return se.transient()
	}
	return false
}

// hubUnreachable reports a model-API failure that allows falling back to a
// cached copy: a network error or a server-side status.
func hubUnreachable(err error) bool {
	var te *transportError
	var se *StatusError
	return errors.As(err, &te) || errors.As(err, &se) && se.transient()
}

func (c *Client) maxAttempts() int {
	if c.MaxAttempts > 0 {
		return c.MaxAttempts
	}
	return defaultMaxAttempts
}

// retry runs op until it succeeds, fails for good, the attempts run out or
// ctx ends, sleeping with exponential backoff (or Retry-After) in between.
func (c *Client) retry(ctx context.Context, op func() error) error {
	base := c.RetryBackoff
	if base <= 0 {
		base = defaultRetryBackoff
	}
	wait := base
	n := c.maxAttempts()
	for attempt := 1; ; attempt++ {
		err := op()
		if err == nil {
			return nil
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if !retryable(err) {
			return err
		}
		if attempt >= n {
			return fmt.Errorf("%w (gave up after %d attempts)", err, attempt)
		}
		d := wait
		var se *StatusError
		if errors.As(err, &se) && se.RetryAfter > 0 {
			d = se.RetryAfter
		}
		t := time.NewTimer(d)
		select {
		case <-ctx.Done():
			t.Stop()
			return ctx.Err()
		case <-t.C:
		}
		wait = min(2*wait, maxBackoff)
	}
}
