// Command mkfake builds the stand-in CUDA driver library (package fakecuda)
// and prints its path, for running other packages' tests against the cuda
// backend without a GPU:
//
//	lib=$(go run ./backend/cuda/internal/fakecuda/mkfake -dir /tmp/fakecuda)
//	DMLGO_LIBCUDA=$lib go test ./backend/backendtest/
package main

import (
	"flag"
	"fmt"
	"os"

	"github.com/dmlgo/dmlgo/backend/cuda/internal/fakecuda"
)

func main() {
	dir := flag.String("dir", "", "output folder (default: a new temporary folder)")
	noKernels := flag.Bool("no-kernels", false, "build the driver stand-in without the emulated kernels")
	flag.Parse()
	if *dir == "" {
		d, err := os.MkdirTemp("", "fakecuda")
		if err != nil {
			fmt.Fprintln(os.Stderr, "mkfake:", err)
			os.Exit(1)
		}
		*dir = d
	}
	if err := os.MkdirAll(*dir, 0o755); err != nil {
		fmt.Fprintln(os.Stderr, "mkfake:", err)
		os.Exit(1)
	}
	lib, err := fakecuda.Build(*dir, !*noKernels)
	if err != nil {
		fmt.Fprintln(os.Stderr, "mkfake:", err)
		os.Exit(1)
	}
	fmt.Println(lib)
}
