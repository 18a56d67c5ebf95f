package server

import (
	"bytes"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// checkParseError checks that a parser failed with a 4xx apiError (or the
// body-limit error), never anything else.
func checkParseError(t *testing.T, err error) {
	t.Helper()
	if err == nil {
		return
	}
	var ae *apiError
	if !errors.As(err, &ae) {
		t.Fatalf("error %v (%T) is not an apiError", err, err)
	}
	if ae.Status < 400 || ae.Status > 499 || ae.Msg == "" {
		t.Fatalf("error %+v: want a 4xx with a message", ae)
	}
}

var jsonSeeds = []string{
	`{"texts":["a photo of a cat"],"images":["aGVsbG8="]}`,
	`{"texts":[1]}`, `{"texts":"a"}`, `[]`, `null`, `{`, `{"texts":["a"]} x`,
	`{"image":"aGVsbG8=","labels":["cat","dog"],"template":"a {}"}`,
	`{"text":"cat","top":5}`, `{"path":"/a.png"}`, `{"image":"data:image/png;base64,aGVsbG8="}`,
	`{"top":1e309}`, `{"texts":["\ud800"]}`, "\xff\xfe", `{"labels":[null]}`,
}

// FuzzRequestDecoding runs every JSON request parser of the server on the
// same input: each must return a value or a 4xx error, never panic.
func FuzzRequestDecoding(f *testing.F) {
	for _, s := range jsonSeeds {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		_, err := ParseEmbedRequest(bytes.NewReader(data))
		checkParseError(t, err)
		c, err := ParseClassifyRequest(bytes.NewReader(data))
		checkParseError(t, err)
		if err == nil && (c.Template == nil || !strings.Contains(*c.Template, "{}") || len(c.Labels) == 0) {
			t.Fatalf("accepted classify request %+v", c)
		}
		sr, err := ParseSearchRequest(bytes.NewReader(data))
		checkParseError(t, err)
		if err == nil && (sr.Top < 1 || sr.Top > MaxTop) {
			t.Fatalf("accepted top %d", sr.Top)
		}
		_, err = ParseVectorizeRequest(bytes.NewReader(data))
		checkParseError(t, err)
		_, err = ParseImmichEntries(data)
		checkParseError(t, err)
		_, err = decodeBase64(string(data), "x")
		checkParseError(t, err)
	})
}

// FuzzMultipart feeds arbitrary multipart bodies to readMultipart.
func FuzzMultipart(f *testing.F) {
	f.Add("b", "--b\r\nContent-Disposition: form-data; name=\"text\"\r\n\r\ncat\r\n--b--\r\n")
	f.Add("b", "--b\r\nContent-Disposition: form-data; name=\"image\"; filename=\"blob\"\r\nContent-Type: application/octet-stream\r\n\r\n\x89PNG\r\n--b--\r\n")
	f.Add("zz", "garbage")
	f.Add("", "")
	f.Fuzz(func(t *testing.T, boundary, body string) {
		r := httptest.NewRequest("POST", "/v1/embed", strings.NewReader(body))
		r.Header.Set("Content-Type", "multipart/form-data; boundary="+boundary)
		r.Body = http.MaxBytesReader(httptest.NewRecorder(), r.Body, 1<<20)
		_, err := readMultipart(r)
		checkParseError(t, err)
	})
}
