package model

// The backends every command can choose from: the CPU always, CUDA where
// libcuda.so.1 loads and a device exists (backend.Select("auto") falls back
// to the CPU and says why otherwise).
import (
	_ "github.com/dmlgo/dmlgo/backend/cpu"
	_ "github.com/dmlgo/dmlgo/backend/cuda"
)
