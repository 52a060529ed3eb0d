//! Golden-file helpers shared by the parity tests: images encoded by the
//! fixture scripts, recorded random draws, and the intensity comparison.
#![allow(dead_code)]

use selfsup_data::transforms::Draw;
use selfsup_data::Image;
use serde::Deserialize;
use serde_json::Value;

/// An image as the fixture scripts write it: HWC bytes in base64.
#[derive(Deserialize)]
pub struct Encoded {
    w: usize,
    h: usize,
    c: usize,
    data: String,
}

impl Encoded {
    /// The decoded image.
    pub fn image(&self) -> Image {
        Image::from_raw(self.w, self.h, self.c, base64_decode(&self.data)).expect("golden image has a consistent size")
    }
}

/// Standard base64 (with padding), enough for the golden files.
pub fn base64_decode(s: &str) -> Vec<u8> {
    fn val(c: u8) -> u32 {
        match c {
            b'A'..=b'Z' => u32::from(c - b'A'),
            b'a'..=b'z' => u32::from(c - b'a') + 26,
            b'0'..=b'9' => u32::from(c - b'0') + 52,
            b'+' => 62,
            b'/' => 63,
            _ => panic!("invalid base64 byte {c}"),
        }
    }
    let bytes: Vec<u8> = s.bytes().filter(|&c| c != b'=').collect();
    let mut out = Vec::with_capacity(bytes.len() * 3 / 4);
    for chunk in bytes.chunks(4) {
        let n = chunk.iter().enumerate().fold(0u32, |acc, (i, &c)| acc | val(c) << (18 - 6 * i));
        out.extend_from_slice(&n.to_be_bytes()[1..chunk.len()]);
    }
    out
}

/// A recorded draw list: `{"u": x}` for a uniform, `{"i": n}` for an integer.
pub fn draws(v: &Value) -> Vec<Draw> {
    v.as_array()
        .expect("draw list")
        .iter()
        .map(|d| match (d.get("u"), d.get("i")) {
            (Some(u), None) => Draw::Uniform(u.as_f64().expect("uniform draw")),
            (None, Some(i)) => Draw::Int(i.as_u64().expect("integer draw") as usize),
            _ => panic!("bad draw {d}"),
        })
        .collect()
}

/// Largest per-value difference; panics when the shapes differ.
pub fn max_diff(got: &Image, want: &Image, what: &str) -> u8 {
    assert_eq!((got.width(), got.height(), got.channels()), (want.width(), want.height(), want.channels()), "shape of {what}");
    got.data().iter().zip(want.data()).map(|(a, b)| a.abs_diff(*b)).max().unwrap_or(0)
}
