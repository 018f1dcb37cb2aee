package sets

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/dmlgo/dmlgo/data"
)

// TestDeepFashionStrictLists checks that -strict reaches the DeepFashion
// readers: a partition list whose count line disagrees with its rows loads
// with a warning, and is an error naming file:line with -strict.
func TestDeepFashionStrictLists(t *testing.T) {
	root := t.TempDir()
	for p, s := range map[string]string{
		"Eval/list_eval_partition.txt": "239557\nimage_pair_name_1 image_pair_name_2 item_id evaluation_status\n" +
			"img/a/id_00000001/comsumer_01.jpg img/a/id_00000001/shop_01.jpg id_00000001 train\n" +
			"img/a/id_00000002/comsumer_01.jpg img/a/id_00000002/shop_01.jpg id_00000002 test\n",
		"Anno/list_bbox_consumer2shop.txt": "4\nimage_name clothes_type source_type x_1 y_1 x_2 y_2\n" +
			"img/a/id_00000001/comsumer_01.jpg 1 2 1 1 9 9\nimg/a/id_00000001/shop_01.jpg 1 1 1 1 9 9\n" +
			"img/a/id_00000002/comsumer_01.jpg 1 2 1 1 9 9\nimg/a/id_00000002/shop_01.jpg 1 1 1 1 9 9\n",
	} {
		full := filepath.Join(root, p)
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(full, []byte(s), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	set, err := Open(parseSpec(t, "-data", DeepFashionC2S, "-data-path", root, "-check", "none"), nil)
	if err != nil {
		t.Fatal(err)
	}
	if set.Dataset.Warnings.Count(data.WarnListCount) != 1 {
		t.Errorf("warnings:\n%s", set.Dataset.Warnings)
	}
	want := filepath.Join(root, "Eval", "list_eval_partition.txt") + ":1: says 239557 rows"
	if _, err := Open(parseSpec(t, "-data", DeepFashionC2S, "-data-path", root, "-check", "none", "-strict"), nil); err == nil || !strings.Contains(err.Error(), want) {
		t.Errorf("-strict: %v, want an error containing %q", err, want)
	}
}
