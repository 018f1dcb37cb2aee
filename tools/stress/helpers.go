//go:build linux

package main

// Small helpers of the cases.

import (
	"encoding/binary"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/dmlgo/dmlgo/internal/procmem"
)

// procStatusKB reads a "Key:   123 kB" line of a /proc file (0 when
// missing).
func procStatusKB(path, key string) int64 {
	n, _ := procmem.Field(path, key)
	return n
}

// freePort returns a loopback port free now.
func freePort() (int, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}

// tensorInfo is a tensor's entry in a safetensors header.
type tensorInfo struct {
	DType   string   `json:"dtype"`
	Shape   []int64  `json:"shape"`
	Offsets [2]int64 `json:"data_offsets"`
}

// readHeader reads a safetensors file's header: its tensors and metadata,
// and where the data begins.
func readHeader(path string) (map[string]tensorInfo, map[string]string, int64, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, nil, 0, err
	}
	defer f.Close()
	var n uint64
	if err := binary.Read(f, binary.LittleEndian, &n); err != nil {
		return nil, nil, 0, fmt.Errorf("%s: %w", path, err)
	}
	if n > 100<<20 {
		return nil, nil, 0, fmt.Errorf("%s: a header of %d bytes", path, n)
	}
	raw := make([]byte, n)
	if _, err := io.ReadFull(f, raw); err != nil {
		return nil, nil, 0, fmt.Errorf("%s: %w", path, err)
	}
	var all map[string]json.RawMessage
	if err := json.Unmarshal(raw, &all); err != nil {
		return nil, nil, 0, fmt.Errorf("%s: header: %w", path, err)
	}
	tensors := map[string]tensorInfo{}
	var meta map[string]string
	for k, v := range all {
		if k == "__metadata__" {
			if err := json.Unmarshal(v, &meta); err != nil {
				return nil, nil, 0, fmt.Errorf("%s: metadata: %w", path, err)
			}
			continue
		}
		var t tensorInfo
		if err := json.Unmarshal(v, &t); err != nil {
			return nil, nil, 0, fmt.Errorf("%s: tensor %s: %w", path, k, err)
		}
		tensors[k] = t
	}
	return tensors, meta, 8 + int64(n), nil
}

// ckptEpoch returns the epochs a checkpoint has completed.
func ckptEpoch(path string) (int, error) {
	_, meta, _, err := readHeader(path)
	if err != nil {
		return 0, err
	}
	var st struct {
		Epoch int `json:"epoch"`
		Step  int `json:"step"`
	}
	if err := json.Unmarshal([]byte(meta["dmlgo.state"]), &st); err != nil {
		return 0, fmt.Errorf("%s: state: %w", path, err)
	}
	return st.Epoch, nil
}

func mib(n int64) string {
	if n >= 1<<30 {
		return fmt.Sprintf("%.2f GiB", float64(n)/(1<<30))
	}
	return fmt.Sprintf("%.0f MiB", float64(n)/(1<<20))
}

// secs writes a duration for people: 4 ms, 1.23 s, 2m05s.
func secs(d time.Duration) string {
	switch {
	case d < 10*time.Millisecond:
		return fmt.Sprintf("%.1f ms", float64(d)/1e6)
	case d < time.Second:
		return fmt.Sprintf("%.0f ms", float64(d)/1e6)
	case d < time.Minute:
		return fmt.Sprintf("%.2f s", d.Seconds())
	}
	return fmt.Sprintf("%dm%02ds", int(d.Minutes()), int(d.Seconds())%60)
}

// tail returns the last n lines of s.
func tail(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n") + "\n"
}

func oneLine(s string) string {
	s = strings.Join(strings.Fields(s), " ")
	if len(s) > 300 {
		s = s[:300] + "…"
	}
	return s
}

// lineWith returns the first line of s containing sub (trimmed), or "".
func lineWith(s, sub string) string {
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, sub) {
			return strings.TrimSpace(l)
		}
	}
	return ""
}

// quantile is the nearest-rank q-quantile of sorted ds.
func quantile(ds []time.Duration, q float64) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	i := int(float64(len(ds))*q+0.999999) - 1
	return ds[min(max(i, 0), len(ds)-1)]
}

// codes writes a count of status codes: "19×200, 1×503".
func codes(m map[int]int) string {
	var ks []int
	for k := range m {
		ks = append(ks, k)
	}
	slices.Sort(ks)
	var s []string
	for _, k := range ks {
		name := strconv.Itoa(k)
		if k <= 0 {
			name = "no answer"
		}
		s = append(s, fmt.Sprintf("%d×%s", m[k], name))
	}
	if len(s) == 0 {
		return "none"
	}
	return strings.Join(s, ", ")
}

// only reports whether every code counted is one of want.
func only(m map[int]int, want ...int) bool {
	for k := range m {
		if !slices.Contains(want, k) {
			return false
		}
	}
	return len(m) > 0
}
