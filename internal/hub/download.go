package hub

import (
	"context"
	"crypto/sha1"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"hash"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// newHash returns the hash that verifies f, already fed with the git blob
// header for non-LFS files.
func newHash(f File) hash.Hash {
	if f.LFS() {
		return sha256.New()
	}
	h := sha1.New()
	fmt.Fprintf(h, "blob %d\x00", f.Size)
	return h
}

func algo(f File) string {
	if f.LFS() {
		return "sha256"
	}
	return "git-sha1"
}

func want(f File) string {
	if f.LFS() {
		return f.SHA256
	}
	return f.GitSHA1
}

// hashFile reports whether the file at path has f's size and hash, and the
// hash it has.
func hashFile(path string, f File) (bool, string, error) {
	fh, err := os.Open(path)
	if err != nil {
		return false, "", err
	}
	defer fh.Close()
	h := newHash(f)
	n, err := io.Copy(h, fh)
	if err != nil {
		return false, "", err
	}
	got := hex.EncodeToString(h.Sum(nil))
	return n == f.Size && got == want(f), got, nil
}

// download fetches f of repo at commit into dir/f.Name, resuming from
// dir/f.Name.part, verifying it, then renaming it into place.
func (c *Client) download(ctx context.Context, dir, repo, revision, commit string, f File) error {
	final := filepath.Join(dir, f.Name)
	part := final + ".part"
	u := c.endpoint() + "/" + repo + "/resolve/" + commit + "/" + url.PathEscape(f.Name)
	err := c.retry(ctx, func() error {
		return c.fetchOnce(ctx, u, part, repo, revision, f)
	})
	if err != nil {
		return err
	}
	if err := os.Rename(part, final); err != nil {
		return fmt.Errorf("hub: moving %s into place: %w", f.Name, err)
	}
	return nil
}

// fetchOnce makes one attempt at completing part: it hashes what part holds,
// asks for the rest with a Range request, appends it (or starts over when
// the server sends the whole file), and verifies the result. On a hash
// mismatch it deletes part.
func (c *Client) fetchOnce(ctx context.Context, u, part, repo, revision string, f File) error {
	fh, err := os.OpenFile(part, os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return fmt.Errorf("hub: %w", err)
	}
	defer fh.Close()
	restart := func() error {
		if err := fh.Truncate(0); err != nil {
			return fmt.Errorf("hub: truncating %s: %w", part, err)
		}
		_, err := fh.Seek(0, io.SeekStart)
		return err
	}

	h := newHash(f)
	have, err := fh.Seek(0, io.SeekEnd)
	if err != nil {
		return fmt.Errorf("hub: %w", err)
	}
	if have > f.Size {
		have = 0
		if err := restart(); err != nil {
			return err
		}
	}
	if have > 0 {
		if _, err := fh.Seek(0, io.SeekStart); err != nil {
			return fmt.Errorf("hub: %w", err)
		}
		if _, err := io.CopyN(h, fh, have); err != nil {
			return fmt.Errorf("hub: reading partial %s: %w", part, err)
		}
	}
	if have == f.Size {
		return c.verify(fh, part, repo, f, h)
	}

	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return fmt.Errorf("hub: %w", err)
	}
	c.setHeaders(req)
	// Ask for the bytes as stored: a transparently decompressed body
	// would break Range offsets and sizes.
	req.Header.Set("Accept-Encoding", "identity")
	if have > 0 {
		req.Header.Set("Range", "bytes="+strconv.FormatInt(have, 10)+"-")
	}
	resp, err := c.httpClient().Do(req)
	if err != nil {
		return netErr(ctx, err)
	}
	defer resp.Body.Close()

	switch resp.StatusCode {
	case http.StatusPartialContent:
		start, ok := contentRangeStart(resp.Header.Get("Content-Range"))
		if have == 0 && ok && start == 0 {
			break
		}
		if !ok || start != have {
			if err := restart(); err != nil {
				return err
			}
			return &resumeError{fmt.Sprintf("hub: %s: asked to resume at byte %d, the server answered Content-Range %q; starting over",
				f.Name, have, resp.Header.Get("Content-Range"))}
		}
	case http.StatusOK:
		if have > 0 {
			// The server ignored the Range: take the whole file.
			have = 0
			h = newHash(f)
			if err := restart(); err != nil {
				return err
			}
		}
	case http.StatusRequestedRangeNotSatisfiable:
		if err := restart(); err != nil {
			return err
		}
		return &resumeError{fmt.Sprintf("hub: %s: the server cannot resume at byte %d; starting over", f.Name, have)}
	default:
		return newStatusError(resp, repo, revision, f.Name, c.Token != "")
	}
	if _, err := fh.Seek(have, io.SeekStart); err != nil {
		return fmt.Errorf("hub: %w", err)
	}

	w := &progressWriter{file: fh, hash: h, done: have, total: f.Size, name: f.Name, fn: c.Progress}
	w.report()
	// Read one byte past the expected size to notice an overlong body.
	n, err := io.CopyBuffer(w, &netReader{ctx: ctx, r: io.LimitReader(resp.Body, f.Size-have+1)}, make([]byte, 256<<10))
	got := have + n
	if err != nil {
		return err
	}
	if got > f.Size {
		fh.Close()
		os.Remove(part)
		return fmt.Errorf("hub: %s of %s: the server sent more than the %d bytes the hub lists (the partial download was deleted)", f.Name, repo, f.Size)
	}
	if got < f.Size {
		return &transportError{fmt.Errorf("hub: %s: connection ended after %d of %d bytes: %w", f.Name, got, f.Size, io.ErrUnexpectedEOF)}
	}
	return c.verify(fh, part, repo, f, h)
}

// verify syncs part and checks its hash, deleting it on a mismatch.
func (c *Client) verify(fh *os.File, part, repo string, f File, h hash.Hash) error {
	got := hex.EncodeToString(h.Sum(nil))
	if got != want(f) {
		fh.Close()
		os.Remove(part)
		return &HashError{File: f.Name, Repo: repo, Algo: algo(f), Expected: want(f), Got: got}
	}
	if err := fh.Sync(); err != nil {
		return fmt.Errorf("hub: syncing %s: %w", part, err)
	}
	return nil
}

// contentRangeStart parses the first byte position of "bytes a-b/n".
func contentRangeStart(v string) (int64, bool) {
	rest, ok := strings.CutPrefix(strings.TrimSpace(v), "bytes ")
	if !ok {
		return 0, false
	}
	a, _, ok := strings.Cut(rest, "-")
	if !ok {
		return 0, false
	}
	n, err := strconv.ParseInt(strings.TrimSpace(a), 10, 64)
	if err != nil || n < 0 {
		return 0, false
	}
	return n, true
}

// netReader marks read errors of a response body as transport errors.
type netReader struct {
	ctx context.Context
	r   io.Reader
}

func (r *netReader) Read(p []byte) (int, error) {
	n, err := r.r.Read(p)
	if err != nil && err != io.EOF {
		err = netErr(r.ctx, err)
	}
	return n, err
}

// progressWriter writes to the part file and the hash, and reports
// progress.
type progressWriter struct {
	file        *os.File
	hash        hash.Hash
	done, total int64
	name        string
	fn          func(file string, done, total int64)
}

func (w *progressWriter) Write(p []byte) (int, error) {
	n, err := w.file.Write(p)
	w.hash.Write(p[:n])
	w.done += int64(n)
	if err != nil {
		return n, fmt.Errorf("hub: writing %s: %w", w.file.Name(), err)
	}
	w.report()
	return n, nil
}

func (w *progressWriter) report() {
	if w.fn != nil {
		w.fn(w.name, min(w.done, w.total), w.total)
	}
}
