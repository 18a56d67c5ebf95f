package store

import (
	"errors"
	"math"
	"math/rand/v2"
	"path/filepath"
	"reflect"
	"testing"
)

func TestVideoRecords(t *testing.T) {
	s := open(t, filepath.Join(t.TempDir(), "index.db"), nil)
	if _, _, err := s.GetVideo("m1", "/v.mp4"); !errors.Is(err, ErrNoModel) {
		t.Fatalf("GetVideo before EnsureVideoModel: %v, want ErrNoModel", err)
	}
	const d = 8
	if err := s.EnsureVideoModel("m1", d, "/models/m1"); err != nil {
		t.Fatal(err)
	}
	if err := s.EnsureVideoModel("m1", d+1, ""); err == nil {
		t.Fatal("EnsureVideoModel with another dimension succeeded")
	}
	// The image namespace is untouched: no image model exists.
	if ms, err := s.Models(); err != nil || len(ms) != 0 {
		t.Fatalf("Models() = %v, %v; want none", ms, err)
	}
	r := rand.New(rand.NewPCG(1, 2))
	rec := VideoRecord{Size: 123, ModTime: 456, Sampling: "fps=1", Duration: 3.5, Step: 1, Times: []float64{0, 1, 2, 3}}
	for range rec.Times {
		rec.Embeddings = append(rec.Embeddings, randVec(r, d))
	}
	fail := VideoRecord{Size: 1, ModTime: 2, Sampling: "fps=1", Err: "not a video"}
	gen0, _ := s.VideoGeneration("m1")
	if err := s.PutVideos("m1", []VideoEntry{{"/a.mp4", rec}, {"/b.mp4", fail}}, nil); err != nil {
		t.Fatal(err)
	}
	if gen1, _ := s.VideoGeneration("m1"); gen1 != gen0+1 {
		t.Errorf("generation %d after a write, want %d", gen1, gen0+1)
	}
	got, ok, err := s.GetVideo("m1", "/a.mp4")
	if err != nil || !ok {
		t.Fatalf("GetVideo: %v %v", ok, err)
	}
	want := rec
	want.Embeddings = nil
	for _, e := range rec.Embeddings {
		want.Embeddings = append(want.Embeddings, Normalize(e))
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("GetVideo = %+v\nwant %+v", got, want)
	}
	var seen []string
	err = s.ScanVideos("m1", true, func(p string, r VideoRecord) error {
		seen = append(seen, p)
		if p == "/b.mp4" && r.Err != "not a video" {
			t.Errorf("failure record: Err %q", r.Err)
		}
		if r.Times != nil {
			t.Errorf("meta scan decoded times of %s", p)
		}
		return nil
	})
	if err != nil || !reflect.DeepEqual(seen, []string{"/a.mp4", "/b.mp4"}) {
		t.Errorf("ScanVideos: %v, %v", seen, err)
	}
	bad := rec
	bad.Embeddings = [][]float32{make([]float32, d+1)}
	bad.Times = []float64{0}
	if err := s.PutVideos("m1", []VideoEntry{{"/c.mp4", bad}}, nil); err == nil {
		t.Error("PutVideos with a wrong dimension succeeded")
	}
	if err := s.PutVideos("m1", nil, []string{"/a.mp4"}); err != nil {
		t.Fatal(err)
	}
	if _, ok, _ := s.GetVideo("m1", "/a.mp4"); ok {
		t.Error("deleted video still present")
	}
}

func TestVideoRecordRoundTrip(t *testing.T) {
	for _, r := range []VideoRecord{
		{Sampling: "frames=3", Err: "boom"},
		{Size: -1, ModTime: math.MaxInt64, Duration: math.Inf(1), Step: 0.2, Times: []float64{0.2}, Embeddings: [][]float32{{1, 2}}, Warning: "truncated"},
	} {
		got, err := decodeVideoRecord(encodeVideoRecord(&r), false)
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(got, r) {
			t.Errorf("round trip %+v → %+v", r, got)
		}
	}
}

func FuzzDecodeVideoRecord(f *testing.F) {
	f.Add(encodeVideoRecord(&VideoRecord{Sampling: "fps=1", Times: []float64{0, 1}, Embeddings: [][]float32{{1, 0}, {0, 1}}}))
	f.Add(encodeVideoRecord(&VideoRecord{Err: "x"}))
	f.Add([]byte{1, 0})
	f.Fuzz(func(t *testing.T, b []byte) {
		r, err := decodeVideoRecord(b, false)
		if err != nil {
			return
		}
		if len(r.Times) != len(r.Embeddings) {
			t.Fatalf("%d times, %d embeddings", len(r.Times), len(r.Embeddings))
		}
		r2, err := decodeVideoRecord(encodeVideoRecord(&r), false)
		if err != nil || len(r2.Times) != len(r.Times) {
			t.Fatalf("re-encoding failed: %v", err)
		}
	})
}
