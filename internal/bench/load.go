package bench

import (
	"bufio"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"os"
	"runtime"
	"runtime/debug"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/goclip/goclip/internal/checkpoint"
	"github.com/goclip/goclip/internal/model"
)

// WriteRandomSafetensors writes a safetensors file holding every tensor of
// cfg (reference names, F32) with random values, streaming it so that the
// writer holds no copy of the weights. It returns the file's size.
func WriteRandomSafetensors(path string, cfg model.Config, seed uint64) (int64, error) {
	shapes := cfg.ExpectedShapes()
	names := make([]string, 0, len(shapes))
	for n := range shapes {
		names = append(names, n)
	}
	sort.Strings(names)
	type entry struct {
		DType   string   `json:"dtype"`
		Shape   []int    `json:"shape"`
		Offsets [2]int64 `json:"data_offsets"`
	}
	hdr := map[string]entry{}
	var off int64
	for _, n := range names {
		size := int64(4 * numel(shapes[n]))
		hdr[n] = entry{DType: "F32", Shape: shapes[n], Offsets: [2]int64{off, off + size}}
		off += size
	}
	hj, err := json.Marshal(hdr)
	if err != nil {
		return 0, err
	}
	for len(hj)%8 != 0 { // keeps the data section 4-byte aligned
		hj = append(hj, ' ')
	}
	f, err := os.Create(path)
	if err != nil {
		return 0, err
	}
	w := bufio.NewWriterSize(f, 1<<20)
	var lenb [8]byte
	binary.LittleEndian.PutUint64(lenb[:], uint64(len(hj)))
	w.Write(lenb[:])
	w.Write(hj)
	r := rand.New(rand.NewPCG(seed, 7))
	buf := make([]byte, 0, 1<<20)
	for _, n := range names {
		shape := shapes[n]
		cnt := numel(shape)
		std := 1.0
		if len(shape) > 1 {
			std = 1 / math.Sqrt(float64(cnt/shape[0]))
		}
		ones := strings.Contains(n, "running_var") || (strings.Contains(n, "ln_") && strings.HasSuffix(n, ".weight"))
		for range cnt {
			v := float32(r.NormFloat64() * std) // drawn even when replaced: the stream stays the same
			if ones {
				v = 1
			}
			buf = binary.LittleEndian.AppendUint32(buf, math.Float32bits(v))
			if len(buf) == cap(buf) {
				w.Write(buf)
				buf = buf[:0]
			}
		}
	}
	w.Write(buf)
	if err := w.Flush(); err != nil {
		f.Close()
		return 0, fmt.Errorf("%s: %w", path, err)
	}
	if err := f.Close(); err != nil {
		return 0, err
	}
	return int64(8+len(hj)) + off, nil
}

func numel(shape []int) int {
	n := 1
	for _, d := range shape {
		n *= d
	}
	return n
}

// LoadResult is what MeasureLoad reports. Sizes are in MB of 10⁶ bytes,
// the unit of the file size and of the bound (RSSBoundMB), not the
// MiB that `goclip bench` reports.
type LoadResult struct {
	FileMB        float64       // size of the checkpoint
	ReadOnce      time.Duration // reading the whole file once through a 4 MiB buffer, for comparison
	Load          time.Duration // open (mmap) + model.New (packing) + Close
	LoadCPU       time.Duration // CPU time (user + system, all threads) the load took; 0 where unknown
	RSSBefore     float64       // resident before loading
	RSSAfterLoad  float64       // resident after loading, file closed
	PeakRSSLoad   float64       // the process's high-water mark right after loading
	RSSAfterEmbed float64       // resident after embedding a batch of images and texts
	PeakRSS       float64       // the process's high-water mark after embedding
}

// RSSBoundMB is the peak-memory goal for a checkpoint of fileMB
// fp32 weights: 1.2 × the weight size + 100 MB.
func RSSBoundMB(fileMB float64) float64 { return 1.2*fileMB + 100 }

// ReadFileOnce reads path from start to end through a reused 4 MiB buffer
// and returns how long that took: the floor for any loader that looks at
// every byte.
func ReadFileOnce(path string) (time.Duration, error) {
	start := time.Now()
	fh, err := os.Open(path)
	if err != nil {
		return 0, err
	}
	defer fh.Close()
	buf := make([]byte, 4<<20)
	for {
		_, err := fh.Read(buf)
		if err == io.EOF {
			break
		}
		if err != nil {
			return 0, fmt.Errorf("%s: %w", path, err)
		}
	}
	return time.Since(start), nil
}

// MeasureLoad loads the safetensors file at path as clip.Load does
// (checkpoint.OpenSafetensors, model.NewPrecision with prec, Close), then embeds batch images
// and texts (none if batch ≤ 0), reporting time and memory. The peak figures are the process's
// high-water mark, so they mean "of the load" only in a process that did
// nothing bigger before (see the load benchmarks, which run each
// measurement in a fresh process); where the kernel allows it, the mark is
// reset first.
func MeasureLoad(path string, cfg model.Config, batch int, prec model.Precision) (LoadResult, error) {
	st, err := os.Stat(path)
	if err != nil {
		return LoadResult{}, err
	}
	var res LoadResult
	res.FileMB = float64(st.Size()) / 1e6
	if res.ReadOnce, err = ReadFileOnce(path); err != nil {
		return LoadResult{}, err
	}
	runtime.GC()
	debug.FreeOSMemory()
	resetPeakRSS()
	res.RSSBefore = rssMB("VmRSS:")
	cpu0 := ProcessCPU()
	start := time.Now()
	f, err := checkpoint.OpenSafetensors(path)
	if err != nil {
		return LoadResult{}, err
	}
	m, err := model.NewPrecision(cfg, f, prec)
	if err != nil {
		return LoadResult{}, err
	}
	f.Close()
	res.Load = time.Since(start)
	if cpu0 > 0 {
		res.LoadCPU = ProcessCPU() - cpu0
	}
	res.PeakRSSLoad = rssMB("VmHWM:")
	runtime.GC()
	res.RSSAfterLoad = rssMB("VmRSS:")
	if batch <= 0 {
		res.RSSAfterEmbed, res.PeakRSS = res.RSSAfterLoad, res.PeakRSSLoad
		return res, nil
	}
	s := cfg.Vision.ImageSize
	px := make([]float32, batch*3*s*s)
	for i := range px {
		px[i] = float32(i%251)/125 - 1
	}
	out := make([]float32, batch*cfg.EmbedDim)
	m.EncodeImage(out, px, batch, nil)
	toks := make([][]int32, batch)
	for i := range toks {
		toks[i] = make([]int32, cfg.Text.ContextLength)
		toks[i][0], toks[i][1], toks[i][cfg.Text.ContextLength-1] = 49406, int32(400+i), 49407
	}
	if err := m.EncodeText(out, toks, nil); err != nil {
		return LoadResult{}, err
	}
	res.RSSAfterEmbed = rssMB("VmRSS:")
	res.PeakRSS = rssMB("VmHWM:")
	runtime.KeepAlive(m)
	return res, nil
}

// resetPeakRSS resets the process's VmHWM to its current RSS where Linux
// allows it (writing 5 to /proc/self/clear_refs); elsewhere it does nothing.
func resetPeakRSS() {
	os.WriteFile("/proc/self/clear_refs", []byte("5"), 0)
}

// rssMB reads a "Vm…:" or "Rss…:" line of /proc/self/status (in kB, that
// is KiB) and returns it in MB of 10⁶ bytes (0 where unknown).
func rssMB(key string) float64 {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if rest, ok := strings.CutPrefix(line, key); ok {
			if fs := strings.Fields(rest); len(fs) > 0 {
				kb, _ := strconv.ParseFloat(fs[0], 64)
				return kb * 1024 / 1e6
			}
		}
	}
	return 0
}
