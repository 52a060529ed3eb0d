//! File-based dataset tests (tiny images in temporary folders).

use std::path::Path;

use super::*;
use crate::imaging::io::imwrite_png;

pub(crate) fn write_rgb_png(path: &Path, w: usize, h: usize, value: [u8; 3]) {
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).expect("mkdir");
    }
    imwrite_png(&Image::filled(w, h, &value), path).expect("write png");
}

fn crc32(bytes: &[u8]) -> u32 {
    let mut crc = 0xFFFF_FFFFu32;
    for &b in bytes {
        crc ^= u32::from(b);
        for _ in 0..8 {
            crc = if crc & 1 != 0 { (crc >> 1) ^ 0xEDB8_8320 } else { crc >> 1 };
        }
    }
    !crc
}

fn chunk(out: &mut Vec<u8>, kind: &[u8; 4], data: &[u8]) {
    out.extend_from_slice(&(data.len() as u32).to_be_bytes());
    let mut body = kind.to_vec();
    body.extend_from_slice(data);
    out.extend_from_slice(&body);
    out.extend_from_slice(&crc32(&body).to_be_bytes());
}

/// A hand-made PNG (zlib "stored" blocks) so that palette images can be written without a
/// PNG encoder that supports them.
fn handmade_png(w: u32, h: u32, bit_depth: u8, color_type: u8, plte: Option<&[u8]>, rows: &[Vec<u8>]) -> Vec<u8> {
    let mut raw = Vec::new();
    for r in rows {
        raw.push(0); // filter: none
        raw.extend_from_slice(r);
    }
    let mut z = vec![0x78, 0x01, 0x01];
    z.extend_from_slice(&(raw.len() as u16).to_le_bytes());
    z.extend_from_slice(&(!(raw.len() as u16)).to_le_bytes());
    z.extend_from_slice(&raw);
    let (mut a, mut b) = (1u32, 0u32);
    for &x in &raw {
        a = (a + u32::from(x)) % 65521;
        b = (b + a) % 65521;
    }
    z.extend_from_slice(&((b << 16) | a).to_be_bytes());
    let mut out = vec![0x89, b'P', b'N', b'G', 0x0D, 0x0A, 0x1A, 0x0A];
    let mut ihdr = Vec::new();
    ihdr.extend_from_slice(&w.to_be_bytes());
    ihdr.extend_from_slice(&h.to_be_bytes());
    ihdr.extend_from_slice(&[bit_depth, color_type, 0, 0, 0]);
    chunk(&mut out, b"IHDR", &ihdr);
    if let Some(p) = plte {
        chunk(&mut out, b"PLTE", p);
    }
    chunk(&mut out, b"IDAT", &z);
    chunk(&mut out, b"IEND", &[]);
    out
}

#[test]
fn grey_rgba_palette_and_16bit_pngs_become_rgb8() {
    let dir = tempfile::tempdir().expect("tempdir");
    let root = dir.path();
    // Grey 8-bit.
    image::save_buffer(root.join("a_gray.png"), &[10, 20, 30, 40], 2, 2, image::ExtendedColorType::L8).expect("write");
    // RGBA: alpha is dropped.
    image::save_buffer(root.join("b_rgba.png"), &[1, 2, 3, 0, 4, 5, 6, 255], 2, 1, image::ExtendedColorType::Rgba8).expect("write");
    // Palette (colour type 3), 2 entries.
    let png = handmade_png(2, 1, 8, 3, Some(&[255, 0, 0, 0, 0, 255]), &[vec![1, 0]]);
    std::fs::write(root.join("c_palette.png"), png).expect("write");
    // 16-bit grey (colour type 0, depth 16): 0xFFFF and 0x8080.
    let png = handmade_png(2, 1, 16, 0, None, &[vec![0xFF, 0xFF, 0x80, 0x80]]);
    std::fs::write(root.join("d_gray16.png"), png).expect("write");

    let ds = CustomDatasetConfig::folder(root.to_string_lossy()).build(None).expect("builds");
    assert_eq!(ds.len(), 4);
    assert_eq!(ds.num_classes(), None);
    let names: Vec<_> = ds.samples().iter().map(|s| s.0.clone()).collect();
    assert_eq!(names, ["a_gray.png", "b_rgba.png", "c_palette.png", "d_gray16.png"]);

    let g = ds.load(0).expect("grey");
    assert_eq!((g.img.width(), g.img.height(), g.img.channels()), (2, 2, 3));
    assert_eq!(g.img.pixel(1, 1), &[40, 40, 40]);
    let a = ds.load(1).expect("rgba");
    assert_eq!(a.img.data(), &[1, 2, 3, 4, 5, 6]);
    let p = ds.load(2).expect("palette");
    assert_eq!(p.img.data(), &[0, 0, 255, 255, 0, 0]);
    let d = ds.load(3).expect("16-bit");
    assert_eq!(d.img.pixel(0, 0), &[255, 255, 255]);
    assert_eq!(d.img.pixel(1, 0), &[128, 128, 128]);
}

#[test]
fn class_folders_give_labels_recursively_case_insensitive() {
    let dir = tempfile::tempdir().expect("tempdir");
    let root = dir.path();
    write_rgb_png(&root.join("cat/x/deep/1.PNG"), 2, 2, [1, 1, 1]);
    write_rgb_png(&root.join("cat/0.png"), 2, 2, [1, 1, 1]);
    write_rgb_png(&root.join("dog/a.png"), 2, 2, [2, 2, 2]);
    std::fs::write(root.join("dog/notes.txt"), "not an image").expect("write");
    std::fs::create_dir_all(root.join(".hidden")).expect("mkdir");
    write_rgb_png(&root.join(".hidden/h.png"), 2, 2, [3, 3, 3]);
    // Loose file at the root is ignored when class folders exist (mmcls).
    write_rgb_png(&root.join("loose.png"), 2, 2, [4, 4, 4]);

    let ds = CustomDatasetConfig::folder(root.to_string_lossy()).build(None).expect("builds");
    assert_eq!(ds.classes(), ["cat", "dog"]);
    assert_eq!(ds.num_classes(), Some(2));
    let listed: Vec<_> = ds.samples().to_vec();
    assert_eq!(
        listed,
        vec![("cat/0.png".to_string(), Some(0)), ("cat/x/deep/1.PNG".to_string(), Some(0)), ("dog/a.png".to_string(), Some(1)),]
    );
    assert_eq!(ds.load(2).expect("load").img.pixel(0, 0), &[2, 2, 2]);

    // Without labels: everything (but hidden entries), unlabelled, sorted.
    let cfg = CustomDatasetConfig { with_label: false, ..CustomDatasetConfig::folder(root.to_string_lossy()) };
    let ds = cfg.build(None).expect("builds");
    assert_eq!(ds.len(), 4);
    assert!(ds.samples().iter().all(|s| s.1.is_none()));
}

/// A file whose name is not valid UTF-8 is read (its listed name is lossy),
/// not reported missing.
#[cfg(unix)]
#[test]
fn non_utf8_names_are_read() {
    use std::os::unix::ffi::OsStrExt;
    let dir = tempfile::tempdir().expect("tempdir");
    let root = dir.path();
    write_rgb_png(&root.join("plain.png"), 2, 2, [1, 1, 1]);
    let latin1 = root.join(std::ffi::OsStr::from_bytes(b"caf\xe9.png"));
    write_rgb_png(&latin1, 2, 2, [7, 7, 7]);
    let cfg = CustomDatasetConfig { with_label: false, ..CustomDatasetConfig::folder(root.to_string_lossy()) };
    let ds = cfg.build(None).expect("builds");
    assert_eq!(ds.len(), 2);
    let i = ds.samples().iter().position(|s| s.0.starts_with("caf")).expect("listed");
    assert_eq!(ds.load(i).expect("the non-UTF-8 name is read").img.pixel(0, 0), &[7, 7, 7]);
}

#[test]
fn empty_folder_is_an_error_naming_it() {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir.path().join("readme.txt"), "x").expect("write");
    let err = CustomDatasetConfig::folder(dir.path().to_string_lossy()).build(None).expect_err("empty");
    assert!(matches!(err, DataError::EmptyDataset { .. }), "{err}");
    assert!(err.to_string().contains(&*dir.path().to_string_lossy()), "{err}");
    let missing = dir.path().join("nope");
    let err = CustomDatasetConfig::folder(missing.to_string_lossy()).build(None).expect_err("missing");
    assert!(err.to_string().contains("nope"), "{err}");
}

#[test]
fn imagenet_annotation_file_with_data_root_and_prefix() {
    let dir = tempfile::tempdir().expect("tempdir");
    let root = dir.path().join("imagenet");
    write_rgb_png(&root.join("train/n01/a.png"), 3, 2, [5, 6, 7]);
    write_rgb_png(&root.join("train/n02/b c.png"), 3, 2, [8, 9, 10]);
    std::fs::create_dir_all(root.join("meta")).expect("mkdir");
    std::fs::write(root.join("meta/train.txt"), "n01/a.png 0\n\nn02/b c.png 999\n").expect("write");

    let json = r#"{"type": "mmcls.ImageNet", "data_root": "imagenet", "ann_file": "meta/train.txt",
                   "data_prefix": {"img_path": "train/"}, "pipeline": [{"type": "LoadImageFromFile"}]}"#;
    let cfg: DatasetConfig = serde_json::from_str(json).expect("parses");
    assert_eq!(cfg.name(), "ImageNet");
    assert_eq!(cfg.pipeline().len(), 1);
    let ds = cfg.build(Some(dir.path())).expect("builds");
    assert_eq!(ds.len(), 2);
    assert_eq!(ds.num_classes(), Some(IMAGENET_NUM_CLASSES));
    let s = ds.load(1).expect("loads");
    assert_eq!((s.label, s.name.as_str()), (Some(999), "n02/b c.png"));

    // CustomDataset: no label column → unlabelled; label → max + 1 classes.
    std::fs::write(root.join("meta/unlabelled.txt"), "n01/a.png\nn02/b c.png\n").expect("write");
    let cfg = CustomDatasetConfig {
        data_root: root.to_string_lossy().into_owned(),
        ann_file: "meta/unlabelled.txt".into(),
        data_prefix: DataPrefix::Path("train".into()),
        ..CustomDatasetConfig::default()
    };
    let ds = cfg.build(None).expect("builds");
    assert_eq!(ds.num_classes(), None);
    assert_eq!(ds.load(1).expect("loads").label, None);

    // `indices` keeps a subset.
    let cfg = CustomDatasetConfig { indices: Some(Indices::List(vec![1])), ..cfg };
    assert_eq!(cfg.build(None).expect("builds").samples()[0].0, "n02/b c.png");

    // Missing annotation file: the error names it.
    let cfg = CustomDatasetConfig {
        ann_file: "meta/missing.txt".into(),
        data_root: root.to_string_lossy().into_owned(),
        ..CustomDatasetConfig::default()
    };
    let err = cfg.build(None).expect_err("missing");
    assert!(err.to_string().contains("missing.txt"), "{err}");
}

#[test]
fn dataset_config_rejects_unknown_keys_and_types() {
    let err = serde_json::from_str::<DatasetConfig>(r#"{"type": "CustomDataset", "data_rot": "x"}"#).expect_err("typo");
    assert!(err.to_string().contains("data_rot"), "{err}");
    let err = serde_json::from_str::<DatasetConfig>(r#"{"type": "Places205"}"#).expect_err("unknown");
    assert!(err.to_string().contains("Places205"), "{err}");
    let cfg: DatasetConfig = serde_json::from_str(r#"{"type": "SyntheticDataset", "num_samples": 3}"#).expect("parses");
    assert_eq!(cfg.build(None).expect("builds").len(), 3);
    let bad_ext = CustomDatasetConfig { extensions: vec![".bmp".into()], ..CustomDatasetConfig::default() };
    assert!(bad_ext.build(None).is_err());
}

#[test]
fn rgb16_converts_and_an_unsupported_format_is_an_error_naming_the_file() {
    let dir = tempfile::tempdir().expect("tempdir");
    let root = dir.path();
    // 16-bit RGB (colour type 2, depth 16): (0xFFFF, 0x0000, 0x8080).
    let png = handmade_png(1, 1, 16, 2, None, &[vec![0xFF, 0xFF, 0x00, 0x00, 0x80, 0x80]]);
    std::fs::write(root.join("a_rgb16.png"), png).expect("write");
    // A TIFF under a JPEG name: found by the scan, refused by the decoder.
    std::fs::write(root.join("b_tiff.jpg"), [b'I', b'I', 42, 0, 8, 0, 0, 0, 0, 0]).expect("write");

    let ds = CustomDatasetConfig::folder(root.to_string_lossy()).build(None).expect("builds");
    assert_eq!(ds.len(), 2);
    let rgb = ds.load(0).expect("16-bit RGB");
    assert_eq!(rgb.img.data(), &[255, 0, 128]);
    let err = ds.load(1).expect_err("TIFF is not decoded").to_string();
    assert!(err.contains("b_tiff.jpg"), "{err}");
}
