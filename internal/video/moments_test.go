package video

import (
	"encoding/json"
	"math"
	"reflect"
	"strings"
	"testing"
)

func TestFindMoments(t *testing.T) {
	times := []float64{0, 1, 2, 3, 4, 5, 6, 7}
	for _, tc := range []struct {
		name     string
		scores   []float32
		shot     []int
		margin   float32
		minScore float32
		k        int
		duration float64
		want     []Moment
	}{
		{
			name:   "adjacent frames merge",
			scores: []float32{0.1, 0.3, 0.31, 0.3, 0.1, 0.2, 0.05, 0},
			shot:   []int{0, 0, 0, 0, 0, 0, 0, 0},
			margin: 0.02, minScore: -2, k: 3, duration: 8,
			want: []Moment{
				{Video: "v", Start: 1, End: 4, Score: 0.31, Peak: 2},
				{Video: "v", Start: 5, End: 6, Score: 0.2, Peak: 5},
				{Video: "v", Start: 0, End: 1, Score: 0.1, Peak: 0},
			},
		},
		{
			name:   "no moment across a cut",
			scores: []float32{0, 0.3, 0.31, 0.3, 0, 0, 0, 0},
			shot:   []int{0, 0, 1, 1, 1, 2, 2, 2},
			margin: 0.02, minScore: -2, k: 2, duration: 8,
			want: []Moment{
				{Video: "v", Start: 2, End: 4, Score: 0.31, Peak: 2},
				{Video: "v", Start: 1, End: 2, Score: 0.3, Peak: 1},
			},
		},
		{
			name:   "no merging",
			scores: []float32{0.5, 0.5, 0, 0, 0, 0, 0, 0},
			shot:   make([]int, 8),
			margin: -1, minScore: -2, k: 2, duration: 8,
			want: []Moment{
				{Video: "v", Start: 0, End: 1, Score: 0.5, Peak: 0},
				{Video: "v", Start: 1, End: 2, Score: 0.5, Peak: 1},
			},
		},
		{
			name:   "min score and the end clamped to the duration",
			scores: []float32{0, 0, 0, 0, 0, 0, 0.4, 0.4},
			shot:   make([]int, 8),
			margin: 0.02, minScore: 0.3, k: 5, duration: 7.5,
			want: []Moment{{Video: "v", Start: 6, End: 7.5, Score: 0.4, Peak: 6}},
		},
		{name: "k 0", scores: make([]float32, 8), shot: make([]int, 8), k: 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := FindMoments("v", times, 1, tc.duration, tc.scores, tc.shot, tc.margin, tc.minScore, tc.k)
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("got  %+v\nwant %+v", got, tc.want)
			}
		})
	}
}

func TestShotStarts(t *testing.T) {
	a, b := []float32{1, 0}, []float32{0, 1}
	c := []float32{float32(math.Sqrt(0.5)), float32(math.Sqrt(0.5))}
	emb := [][]float32{a, a, c, b, b, a}
	if got := ShotStarts(emb, 0.8); !reflect.DeepEqual(got, []int{2, 3, 5}) {
		t.Errorf("ShotStarts 0.8 = %v", got)
	}
	if got := ShotStarts(emb, 0.5); !reflect.DeepEqual(got, []int{5}) {
		t.Errorf("ShotStarts 0.5 = %v", got)
	}
	if got := shotIDs(6, []int{2, 3, 5}); !reflect.DeepEqual(got, []int{0, 0, 1, 2, 2, 3}) {
		t.Errorf("shotIDs = %v", got)
	}
}

func TestMomentJSON(t *testing.T) {
	b, err := json.Marshal([]Moment{{Video: "a.mp4", Start: 12, End: 15, Score: 0.31, Peak: 13}, {Video: "b", Start: 2.4, End: 1e21}})
	if err != nil {
		t.Fatal(err)
	}
	want := `[{"video":"a.mp4","start":12.0,"end":15.0,"score":0.31},{"video":"b","start":2.4,"end":1000000000000000000000.0,"score":0}]`
	if string(b) != want {
		t.Errorf("got  %s\nwant %s", b, want)
	}
}

func TestParseSeconds(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want float64
		bad  bool
	}{
		{in: "5", want: 5}, {in: "2.5", want: 2.5}, {in: "5s", want: 5}, {in: "1m30s", want: 90},
		{in: "1500ms", want: 1.5}, {in: "1:30", want: 90}, {in: "01:02:03.5", want: 3723.5}, {in: " 7 ", want: 7},
		{in: "", bad: true}, {in: "-1", bad: true}, {in: "-1s", bad: true}, {in: "NaN", bad: true}, {in: "Inf", bad: true},
		{in: "1:60", bad: true}, {in: "1.5:00", bad: true}, {in: "1:2:3:4", bad: true}, {in: "five", bad: true}, {in: "1:", bad: true},
	} {
		got, err := ParseSeconds(tc.in)
		if tc.bad {
			if err == nil {
				t.Errorf("ParseSeconds(%q) = %v, want an error", tc.in, got)
			}
			continue
		}
		if err != nil || got != tc.want {
			t.Errorf("ParseSeconds(%q) = %v, %v; want %v", tc.in, got, err, tc.want)
		}
	}
}

func FuzzParseSeconds(f *testing.F) {
	for _, s := range []string{"5", "2.5s", "1:30", "01:02:03.5", "-1", "1e400", "0x10", "1:1e2"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		v, err := ParseSeconds(s)
		if err == nil && (v < 0 || math.IsNaN(v) || math.IsInf(v, 0)) {
			t.Fatalf("ParseSeconds(%q) = %v", s, v)
		}
	})
}

func TestParseShowinfo(t *testing.T) {
	line := "[Parsed_showinfo_2 @ 0x55c3f7337c80] [info] n:  12 pts:   6144 pts_time:0.48    duration:    512 duration_time:0.04 pos:     4909 fmt:rgb24 sar:1/1 s:64x48 i:P iskey:0 type:B checksum:5F8D8815 plane_checksum:[5F8D8815] mean:[125 3 4] stdev:[122.0]"
	level, msg := splitLog(line)
	if level != "info" {
		t.Errorf("level %q", level)
	}
	m, ok := parseShowinfo(msg)
	if !ok || m != (frameMeta{n: 12, pts: 6144, format: "rgb24", w: 64, h: 48}) {
		t.Errorf("parseShowinfo = %+v, %v", m, ok)
	}
	tb, ok := parseConfigTB("config in time_base: 1/12800, frame_rate: 25/1")
	if !ok || tb != (Rational{1, 12800}) {
		t.Errorf("parseConfigTB = %v, %v", tb, ok)
	}
	if got := timeOf(6144, tb); got != 0.48 {
		t.Errorf("timeOf = %v", got)
	}
	for _, bad := range []string{"", "n:", "n: 1 pts: NOPTS fmt:rgb24 s:2x2", "n: 1 pts: 3 fmt:rgb24 s:2x", "n: x pts: 3 fmt:rgb24 s:2x2", "color_range:pc"} {
		if m, ok := parseShowinfo(bad); ok {
			t.Errorf("parseShowinfo(%q) = %+v", bad, m)
		}
	}
	if lv, msg := splitLog("[mov,mp4 @ 0x1] [error] stream 0, offset 0xee3: partial file"); lv != "error" || msg != "stream 0, offset 0xee3: partial file" {
		t.Errorf("splitLog = %q, %q", lv, msg)
	}
}

func FuzzParseShowinfo(f *testing.F) {
	f.Add("[Parsed_showinfo_1 @ 0x1] [info] n:   0 pts:      0 pts_time:0       pos:     3471 fmt:rgb24 sar:1/1 s:64x48 i:P iskey:0")
	f.Add("[Parsed_showinfo_1 @ 0x1] [info] config in time_base: 1/1, frame_rate: 1/1")
	f.Add("[error] n: 1 pts: -5 fmt:rgb24 s:99999999999x1")
	f.Fuzz(func(t *testing.T, line string) {
		l := newLogReader()
		l.line(line)
		_, msg := splitLog(line)
		if m, ok := parseShowinfo(msg); ok && (m.w <= 0 || m.h <= 0 || m.format == "") {
			t.Fatalf("accepted %+v", m)
		}
		if tb, ok := parseConfigTB(msg); ok && tb.Den <= 0 {
			t.Fatalf("time base %v", tb)
		}
		_ = timeOf(math.MaxInt64, Rational{math.MaxInt64, 1})
	})
}

func TestParseProbe(t *testing.T) {
	const js = `{"streams":[{"codec_type":"video","codec_name":"h264","width":64,"height":48,"r_frame_rate":"25/1","time_base":"1/12800","duration":"3.000000","nb_frames":"75","nb_read_packets":"74","disposition":{"attached_pic":0}}],"format":{"format_name":"mov,mp4,m4a,3gp,3g2,mj2","duration":"3.1"}}`
	info, err := parseProbe([]byte(js), "a.mp4")
	if err != nil {
		t.Fatal(err)
	}
	want := &Info{Path: "a.mp4", Format: "mov,mp4,m4a,3gp,3g2,mj2", Codec: "h264", Width: 64, Height: 48,
		FrameRate: Rational{25, 1}, TimeBase: Rational{1, 12800}, Duration: 3, Frames: 74}
	if !reflect.DeepEqual(info, want) {
		t.Errorf("got  %+v\nwant %+v", info, want)
	}
	for _, tc := range []struct{ js, want string }{
		{`{"streams":[],"format":{"format_name":"wav"}}`, "no video stream"},
		{`{"streams":[{"codec_type":"video","disposition":{"attached_pic":1}}],"format":{"format_name":"mp3"}}`, "no video stream"},
		{`{"streams":[{"codec_type":"video"}],"format":{"format_name":"png_pipe"}}`, "still image"},
		{`{"streams":`, "bad ffprobe output"},
	} {
		if _, err := parseProbe([]byte(tc.js), "x"); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("parseProbe(%s): %v, want %q", tc.js, err, tc.want)
		}
	}
}

func FuzzParseProbe(f *testing.F) {
	f.Add([]byte(`{"streams":[{"codec_type":"video","width":64,"height":48,"r_frame_rate":"25/1","time_base":"1/12800","duration":"3.0"}],"format":{"duration":"3"}}`))
	f.Add([]byte(`{"streams":[{"codec_type":"video","duration":"-1","r_frame_rate":"1/-1"}],"format":{"duration":"NaN"}}`))
	f.Add([]byte(`null`))
	f.Fuzz(func(t *testing.T, data []byte) {
		info, err := parseProbe(data, "fuzz")
		if err == nil && (info.Duration < 0 || math.IsNaN(info.Duration)) {
			t.Fatalf("duration %v", info.Duration)
		}
	})
}
