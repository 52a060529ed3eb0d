//! Loader tests: determinism, counts, resume, bad files.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use super::*;
use crate::datasets::{CustomDatasetConfig, SyntheticDatasetConfig};
use crate::imaging::io::imwrite_png;
use crate::transforms::TransformConfig;
use crate::Image;

const AUGMENT: &str = r#"[
    {"type": "LoadImageFromFile"},
    {"type": "MultiView", "num_views": 2, "transforms": [[
        {"type": "RandomResizedCrop", "size": 8, "scale": [0.2, 1.0], "backend": "pillow"},
        {"type": "RandomFlip", "prob": 0.5}]]},
    {"type": "PackSelfSupInputs", "algorithm_keys": ["sample_idx"]}
]"#;

fn synthetic(n: usize) -> Arc<dyn Dataset> {
    Arc::new(
        SyntheticDatasetConfig { num_samples: n, img_size: 12, num_classes: 3, ..SyntheticDatasetConfig::default() }
            .build()
            .expect("valid"),
    )
}

fn pipeline(json: &str) -> Pipeline {
    Pipeline::new(&TransformConfig::parse_list(json).expect("parses")).expect("builds")
}

fn loader(ds: Arc<dyn Dataset>, opts: DataLoaderOptions) -> DataLoader {
    DataLoader::new(ds, pipeline(AUGMENT), opts).expect("valid")
}

fn collect(it: BatchIter) -> Vec<Batch> {
    it.map(|b| b.expect("batch")).collect()
}

#[test]
fn same_batches_whatever_the_number_of_workers() {
    let base = DataLoaderOptions { batch_size: 4, shuffle: true, seed: 11, ..DataLoaderOptions::default() };
    let reference: Vec<Vec<Batch>> = (0..2).map(|e| collect(loader(synthetic(18), base.clone()).iter_epoch(e))).collect();
    for workers in [1, 3] {
        for prefetch in [1, 3] {
            let l = loader(synthetic(18), DataLoaderOptions { num_workers: workers, prefetch, ..base.clone() });
            for (e, want) in reference.iter().enumerate() {
                assert_eq!(&collect(l.iter_epoch(e)), want, "workers {workers}, epoch {e}");
            }
        }
    }
    let b = &reference[0][0];
    assert_eq!(b.views.len(), 2);
    assert_eq!(b.views[0].shape, [4, 3, 8, 8]);
    assert_ne!(b.views[0].data, b.views[1].data, "two views are two different augmentations");
    assert!(b.views[0].data.iter().all(|&v| (0.0..=255.0).contains(&v)));
    // A different seed changes the batches.
    let other = collect(loader(synthetic(18), DataLoaderOptions { seed: 12, ..base }).iter_epoch(0));
    assert_ne!(other, reference[0]);
}

#[test]
fn shuffle_and_drop_last_counts() {
    let mk =
        |drop_last, shuffle| loader(synthetic(10), DataLoaderOptions { batch_size: 4, drop_last, shuffle, ..DataLoaderOptions::default() });
    let keep = mk(false, false);
    assert_eq!(keep.batches_per_epoch(), 3);
    let sizes: Vec<_> = collect(keep.iter_epoch(0)).iter().map(Batch::len).collect();
    assert_eq!(sizes, [4, 4, 2]);
    let order: Vec<_> = collect(keep.iter_epoch(0)).into_iter().flat_map(|b| b.indices).collect();
    assert_eq!(order, (0..10).collect::<Vec<_>>());

    let drop = mk(true, true);
    assert_eq!(drop.batches_per_epoch(), 2);
    let batches = collect(drop.iter_epoch(0));
    assert_eq!(batches.iter().map(Batch::len).collect::<Vec<_>>(), [4, 4]);
    assert_eq!(batches[1].iteration, 1);

    let shuffled = mk(false, true);
    let e0: Vec<_> = collect(shuffled.iter_epoch(0)).into_iter().flat_map(|b| b.indices).collect();
    let e1: Vec<_> = collect(shuffled.iter_epoch(1)).into_iter().flat_map(|b| b.indices).collect();
    assert_ne!(e0, e1);
    let mut sorted = e0.clone();
    sorted.sort_unstable();
    assert_eq!(sorted, (0..10).collect::<Vec<_>>(), "each sample once per epoch");

    // Fewer samples than a batch with drop_last: an error, not an endless empty loop.
    let err = DataLoader::new(
        synthetic(3),
        pipeline(AUGMENT),
        DataLoaderOptions { batch_size: 4, drop_last: true, ..DataLoaderOptions::default() },
    )
    .expect_err("no batch");
    assert!(err.to_string().contains("batch_size"), "{err}");
}

#[test]
fn iter_from_resumes_exactly_across_epochs() {
    let l = loader(synthetic(10), DataLoaderOptions { batch_size: 3, num_workers: 2, seed: 5, ..DataLoaderOptions::default() });
    let nb = l.batches_per_epoch();
    assert_eq!(nb, 4);
    let e0 = collect(l.iter_epoch(0));
    let e1 = collect(l.iter_epoch(1));
    let resumed: Vec<Batch> = l.iter_from(0, 2).take(4).map(|b| b.expect("batch")).collect();
    assert_eq!(resumed[0], e0[2]);
    assert_eq!(resumed[1], e0[3]);
    assert_eq!(resumed[2], e1[0]);
    assert_eq!((resumed[3].epoch, resumed[3].iteration), (1, 1));
    assert_eq!(l.load_batch(1, 1).expect("batch"), e1[1]);
    // Dropping an endless iterator stops its workers.
    let mut it = l.iter_from(7, 0);
    assert!(it.next().is_some());
    drop(it);
}

#[test]
fn infinite_sampler_batches_straddle_passes() {
    let l = loader(
        synthetic(5),
        DataLoaderOptions { batch_size: 2, shuffle: false, sampler: SamplerKind::Infinite, ..DataLoaderOptions::default() },
    );
    let idx: Vec<Vec<usize>> = l.iter_from(0, 0).take(4).map(|b| b.expect("batch").indices).collect();
    assert_eq!(idx, vec![vec![0, 1], vec![2, 3], vec![4, 0], vec![1, 2]]);
}

fn folder_with_bad_files(dir: &std::path::Path) {
    for i in 0..7 {
        imwrite_png(&Image::filled(6 + i, 5, &[i as u8 * 10, 0, 0]), &dir.join(format!("ok{i}.png"))).expect("write");
    }
    std::fs::write(dir.join("bad0.jpg"), b"this is not a jpeg at all").expect("write");
    let mut png = Vec::new();
    imwrite_png(&Image::filled(8, 8, &[1, 2, 3]), &dir.join("tmp.png")).expect("write");
    png.extend_from_slice(&std::fs::read(dir.join("tmp.png")).expect("read"));
    std::fs::remove_file(dir.join("tmp.png")).expect("rm");
    std::fs::write(dir.join("bad1.png"), &png[..png.len() / 2]).expect("write truncated");
    let mut jpeg = Vec::new();
    image::DynamicImage::ImageRgb8(image::RgbImage::from_fn(32, 32, |x, y| image::Rgb([x as u8 * 8, y as u8 * 8, 0])))
        .write_to(&mut std::io::Cursor::new(&mut jpeg), image::ImageFormat::Jpeg)
        .expect("encode");
    std::fs::write(dir.join("bad2.jpg"), &jpeg[..jpeg.len() * 2 / 3]).expect("write truncated");
}

#[test]
fn corrupt_and_truncated_files_are_skipped_and_counted() {
    let dir = tempfile::tempdir().expect("tempdir");
    folder_with_bad_files(dir.path());
    let ds: Arc<dyn Dataset> = Arc::new(CustomDatasetConfig::folder(dir.path().to_string_lossy()).build(None).expect("builds"));
    assert_eq!(ds.len(), 10);
    let warnings = Arc::new(AtomicUsize::new(0));
    let seen = warnings.clone();
    for workers in [0, 3] {
        let l = DataLoader::new(
            ds.clone(),
            pipeline(r#"[{"type": "RandomResizedCrop", "size": 4}, {"type": "PackSelfSupInputs"}]"#),
            DataLoaderOptions { batch_size: 5, num_workers: workers, ..DataLoaderOptions::default() },
        )
        .expect("valid")
        .with_skip_callback({
            let seen = seen.clone();
            Arc::new(move |e: &DataError| {
                assert!(e.is_sample_error());
                seen.fetch_add(1, Ordering::Relaxed);
            })
        });
        for epoch in 0..2 {
            let batches = collect(l.iter_epoch(epoch));
            assert_eq!(batches.len(), 2);
            for b in &batches {
                assert_eq!(b.len(), 5, "batches are refilled");
                assert!(b.names.iter().all(|n| n.starts_with("ok")), "{:?}", b.names);
            }
        }
        assert_eq!(l.skipped(), 3, "each bad file counted once");
    }
    assert_eq!(warnings.load(Ordering::Relaxed), 6, "one warning per bad file per loader");
}

#[test]
fn only_bad_files_is_an_error_not_a_hang() {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir.path().join("a.png"), b"garbage").expect("write");
    std::fs::write(dir.path().join("b.jpg"), b"garbage").expect("write");
    let ds: Arc<dyn Dataset> = Arc::new(CustomDatasetConfig::folder(dir.path().to_string_lossy()).build(None).expect("builds"));
    let l =
        DataLoader::new(ds, pipeline("[]"), DataLoaderOptions::default()).expect("valid").with_skip_callback(Arc::new(|_: &DataError| {}));
    let first = l.iter_epoch(0).next().expect("one item");
    assert!(matches!(first, Err(DataError::NoReadableSample { .. })), "{first:?}");
}

#[test]
fn views_of_different_sizes_are_an_error() {
    let dir = tempfile::tempdir().expect("tempdir");
    imwrite_png(&Image::filled(4, 4, &[0, 0, 0]), &dir.path().join("a.png")).expect("write");
    imwrite_png(&Image::filled(5, 4, &[0, 0, 0]), &dir.path().join("b.png")).expect("write");
    let ds: Arc<dyn Dataset> = Arc::new(CustomDatasetConfig::folder(dir.path().to_string_lossy()).build(None).expect("builds"));
    let l = DataLoader::new(ds, pipeline("[]"), DataLoaderOptions { batch_size: 2, shuffle: false, ..DataLoaderOptions::default() })
        .expect("valid");
    let err = l.load_batch(0, 0).expect_err("4x4 and 5x4");
    assert!(matches!(err, DataError::ViewShapeMismatch { .. }), "{err}");
}

#[test]
fn from_mmengine_config() {
    let dir = tempfile::tempdir().expect("tempdir");
    for c in ["a", "b"] {
        for i in 0..3 {
            let p = dir.path().join("data/train").join(c).join(format!("{i}.png"));
            std::fs::create_dir_all(p.parent().expect("parent")).expect("mkdir");
            imwrite_png(&Image::filled(20, 16, &[i * 50, 0, 0]), &p).expect("write");
        }
    }
    let json = r#"{
        "batch_size": 2, "num_workers": 2, "persistent_workers": true,
        "sampler": {"type": "DefaultSampler", "shuffle": false},
        "collate_fn": {"type": "default_collate"},
        "drop_last": true,
        "dataset": {"type": "mmcls.CustomDataset", "data_root": "data", "data_prefix": {"img_path": "train/"},
            "pipeline": [
                {"type": "LoadImageFromFile"},
                {"type": "mmcls.ResizeEdge", "scale": 12, "edge": "short"},
                {"type": "CenterCrop", "crop_size": 10},
                {"type": "PackSelfSupInputs", "algorithm_keys": ["gt_label"]}]}
    }"#;
    let cfg = DataLoaderConfig::from_json(json).expect("parses");
    let l = DataLoader::from_config(&cfg, Some(dir.path())).expect("builds");
    assert_eq!(l.dataset().num_classes(), Some(2));
    let batches = collect(l.iter_epoch(0));
    assert_eq!(batches.len(), 3);
    assert_eq!(batches[0].views[0].shape, [2, 3, 10, 10]);
    let labels: Vec<_> = batches.iter().flat_map(|b| b.labels.clone()).collect();
    assert_eq!(labels, [Some(0), Some(0), Some(0), Some(1), Some(1), Some(1)]);

    let bad = json.replace("default_collate", "pseudo_collate");
    let cfg = DataLoaderConfig::from_json(&bad).expect("parses");
    assert!(DataLoader::from_config(&cfg, Some(dir.path())).is_err());
    let typo = json.replace("\"drop_last\"", "\"droplast\"");
    let err = DataLoaderConfig::from_json(&typo).expect_err("unknown key");
    assert!(err.to_string().contains("droplast"), "{err}");
}

#[test]
fn shards_split_the_epoch_order_as_mmengine_samplers_do() {
    let opts = DataLoaderOptions { batch_size: 2, seed: 7, ..DataLoaderOptions::default() };
    let whole = loader(synthetic(7), opts.clone());
    let order: Vec<usize> = collect(whole.iter_epoch(1)).into_iter().flat_map(|b| b.indices).collect();
    // DefaultSampler(round_up): the order padded to 8 by its start, rank r
    // taking positions r, r + 2, ...
    let padded: Vec<usize> = (0..8).map(|q| order[q % 7]).collect();
    for rank in 0..2 {
        let shard = loader(synthetic(7), opts.clone()).sharded(rank, 2).expect("valid");
        assert_eq!(shard.batches_per_epoch(), 2);
        let got: Vec<usize> = collect(shard.iter_epoch(1)).into_iter().flat_map(|b| b.indices).collect();
        let want: Vec<usize> = padded.iter().skip(rank).step_by(2).copied().collect();
        assert_eq!(got, want, "rank {rank}");
    }
    // Rank 0 of 1 is the loader itself, augmentations included.
    let one = loader(synthetic(7), opts.clone()).sharded(0, 1).expect("valid");
    assert_eq!(collect(one.iter_epoch(1)), collect(whole.iter_epoch(1)));
    // The two ranks' views of their first samples come from different streams.
    let r0 = collect(loader(synthetic(7), opts.clone()).sharded(0, 2).expect("valid").iter_epoch(0));
    let r1 = collect(loader(synthetic(7), opts.clone()).sharded(1, 2).expect("valid").iter_epoch(0));
    assert_ne!(r0[0].views[0].data, r1[0].views[0].data);
    // InfiniteSampler strides its endless stream.
    let inf = DataLoaderOptions { batch_size: 2, shuffle: false, sampler: SamplerKind::Infinite, ..DataLoaderOptions::default() };
    let idx: Vec<Vec<usize>> =
        loader(synthetic(5), inf).sharded(1, 2).expect("valid").iter_from(0, 0).take(3).map(|b| b.expect("batch").indices).collect();
    assert_eq!(idx, vec![vec![1, 3], vec![0, 2], vec![4, 1]]);
    assert!(loader(synthetic(5), opts).sharded(2, 2).is_err());
}
