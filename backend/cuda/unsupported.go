//go:build !(linux && (amd64 || arm64))

package cuda

import (
	"errors"
	"runtime"

	"github.com/dmlgo/dmlgo/backend"
)

// On other systems the package builds but the backend never opens: purego
// loads the driver without cgo only on linux/amd64 and linux/arm64 here.
func init() {
	backend.Register("cuda", func() (backend.Backend, error) {
		return nil, errors.New("cuda: the cuda backend supports linux/amd64 and linux/arm64, not " + runtime.GOOS + "/" + runtime.GOARCH)
	})
}
