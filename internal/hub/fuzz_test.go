package hub

import (
	"testing"
	"time"
)

func mustTime(t *testing.T, s string) time.Time {
	t.Helper()
	tm, err := time.Parse(time.RFC1123, s)
	if err != nil {
		t.Fatal(err)
	}
	return tm
}

const sampleInfo = `{"_id":"621ffdc136468d709f17ee8f","id":"openai/clip-vit-base-patch32","modelId":"openai/clip-vit-base-patch32",` +
	`"sha":"3d74acf9a28c67741b2f4f2ea7635f0aaf6f0268","private":false,"gated":false,"disabled":false,` +
	`"siblings":[{"rfilename":".gitattributes","blobId":"d3c2b1a0f9e8d7c6b5a4f3e2d1c0b9a8f7e6d5c4","size":1477},` +
	`{"rfilename":"config.json","blobId":"0a1b2c3d4e5f60718293a4b5c6d7e8f901234567","size":4519},` +
	`{"rfilename":"pytorch_model.bin","blobId":"1234567890abcdef1234567890abcdef12345678","size":605247071,` +
	`"lfs":{"sha256":"a63082132ba4f97a80bea76823f544493bffa8082296d62d71581a4feff1576f","size":605247071,"pointerSize":135}}]}`

// FuzzParseModelInfo checks that any API response either parses into a
// consistent ModelInfo or fails cleanly, and that SelectFiles never panics
// on what parses.
func FuzzParseModelInfo(f *testing.F) {
	for _, s := range []string{
		sampleInfo,
		`{"sha":"3d74acf9a28c67741b2f4f2ea7635f0aaf6f0268","siblings":[]}`,
		`{"sha":"3d74acf9a28c67741b2f4f2ea7635f0aaf6f0268","siblings":[{"rfilename":"model.safetensors","size":-1}]}`,
		`{"sha":"3d74acf9a28c67741b2f4f2ea7635f0aaf6f0268","siblings":[{"rfilename":"model.safetensors","lfs":{"sha256":"zz","size":3}}]}`,
		`{"sha":"3d74acf9a28c67741b2f4f2ea7635f0aaf6f0268","siblings":[{"rfilename":"config.json"},{"rfilename":"config.json"}]}`,
		`{"sha":"../../etc","siblings":[]}`,
		`{"sha":123}`,
		`{"siblings":null}`,
		`[]`,
		`null`,
		``,
		`{"sha":"3d74acf9a28c67741b2f4f2ea7635f0aaf6f0268","siblings":[{"rfilename":""}]}`,
		`{"sha":"3d74acf9a28c67741b2f4f2ea7635f0aaf6f0268","siblings":[{"rfilename":"pytorch_model.bin","size":5,"lfs":{"sha256":"a63082132ba4f97a80bea76823f544493bffa8082296d62d71581a4feff1576f","size":6}}]}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		info, err := ParseModelInfo(data)
		if err != nil {
			if info != nil {
				t.Fatal("non-nil info with an error")
			}
			return
		}
		if len(info.SHA) != 40 && len(info.SHA) != 64 || !isHex(info.SHA) {
			t.Fatalf("accepted commit %q", info.SHA)
		}
		files, err := SelectFiles(info.Siblings)
		if err != nil {
			return
		}
		weights := 0
		for _, f := range files {
			if !isWanted(f.Name) || f.Size < 0 {
				t.Fatalf("selected %+v", f)
			}
			if f.LFS() == (f.GitSHA1 != "") {
				t.Fatalf("file %s has both or neither hash", f.Name)
			}
			if looksLikeWeights(f.Name) {
				weights++
			}
		}
		if weights != 1 {
			t.Fatalf("selected %d weights files", weights)
		}
	})
}

// FuzzParseManifest checks that any manifest parses into safe file names
// or fails cleanly.
func FuzzParseManifest(f *testing.F) {
	for _, s := range []string{
		`{"repo":"openai/clip-vit-base-patch32","revision":"main","commit":"3d74acf9a28c67741b2f4f2ea7635f0aaf6f0268","complete":true,` +
			`"files":[{"name":"config.json","size":10,"git_sha1":"0a1b2c3d4e5f60718293a4b5c6d7e8f901234567"},` +
			`{"name":"model.safetensors","size":20,"sha256":"a63082132ba4f97a80bea76823f544493bffa8082296d62d71581a4feff1576f"}]}`,
		`{"repo":"openai/clip","files":[{"name":"../../x","size":1,"sha256":"aa"}]}`,
		`{"repo":"../x","files":[]}`,
		`{"repo":"a/b","files":[{"name":"config.json","size":1}]}`,
		`{"repo":"a/b","files":[{"name":"config.json","size":-1,"sha256":"a"}]}`,
		`{`,
		``,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		m, err := ParseManifest(data)
		if err != nil {
			return
		}
		if validRepoID(m.Repo) != nil {
			t.Fatalf("accepted repo %q", m.Repo)
		}
		for _, e := range m.Files {
			if !isWanted(e.Name) || e.Size < 0 {
				t.Fatalf("accepted entry %+v", e)
			}
		}
	})
}
