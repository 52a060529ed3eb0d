//! A built-in 5×9 bitmap font for printable ASCII, so charts and captions need
//! no font file.
//!
//! Each glyph is 5 pixels wide and 9 tall: capitals and digits use rows 0–6,
//! lowercase letters have their x-height in rows 2–6, and descenders (`g`,
//! `j`, `p`, `q`, `y`, `,`, `_`) reach rows 7–8. Characters outside `' '..='~'`
//! are drawn as a hollow box. Text is scaled by whole pixels (nearest
//! neighbour), which keeps it crisp.

use image::{Rgb, RgbImage};

/// Glyph width in font pixels.
pub const GLYPH_WIDTH: u32 = 5;
/// Glyph height in font pixels, descenders included.
pub const GLYPH_HEIGHT: u32 = 9;
/// Horizontal distance between the left edges of two glyphs (one column gap).
pub const ADVANCE: u32 = GLYPH_WIDTH + 1;
/// Height of a line of text, including one row of spacing.
pub const LINE_HEIGHT: u32 = GLYPH_HEIGHT + 1;

const FIRST: u8 = b' ';
const LAST: u8 = b'~';

/// The glyphs of `' '..='~'` in order, one row per string (`#` set, `.`
/// clear), top row first. Trailing empty rows are left out.
const SOURCE: [&[&str]; 95] = [
    &[],                                                                                // ' '
    &["..#..", "..#..", "..#..", "..#..", "..#..", ".....", "..#.."],                   // !
    &[".#.#.", ".#.#."],                                                                // "
    &[".#.#.", ".#.#.", "#####", ".#.#.", "#####", ".#.#.", ".#.#."],                   // #
    &["..#..", ".####", "#.#..", ".###.", "..#.#", "####.", "..#.."],                   // $
    &["##...", "##..#", "...#.", "..#..", ".#...", "#..##", "...##"],                   // %
    &[".##..", "#..#.", "#.#..", ".#...", "#.#.#", "#..#.", ".##.#"],                   // &
    &["..#..", "..#.."],                                                                // '
    &["...#.", "..#..", ".#...", ".#...", ".#...", "..#..", "...#."],                   // (
    &[".#...", "..#..", "...#.", "...#.", "...#.", "..#..", ".#..."],                   // )
    &[".....", "..#..", "#.#.#", ".###.", "#.#.#", "..#..", "....."],                   // *
    &[".....", "..#..", "..#..", "#####", "..#..", "..#.."],                            // +
    &[".....", ".....", ".....", ".....", ".....", "..##.", "...#.", "..#.."],          // ,
    &[".....", ".....", ".....", "#####"],                                              // -
    &[".....", ".....", ".....", ".....", ".....", "..##.", "..##."],                   // .
    &["....#", "....#", "...#.", "..#..", ".#...", "#....", "#...."],                   // /
    &[".###.", "#...#", "#..##", "#.#.#", "##..#", "#...#", ".###."],                   // 0
    &["..#..", ".##..", "..#..", "..#..", "..#..", "..#..", ".###."],                   // 1
    &[".###.", "#...#", "....#", "...#.", "..#..", ".#...", "#####"],                   // 2
    &["#####", "...#.", "..#..", "...#.", "....#", "#...#", ".###."],                   // 3
    &["...#.", "..##.", ".#.#.", "#..#.", "#####", "...#.", "...#."],                   // 4
    &["#####", "#....", "####.", "....#", "....#", "#...#", ".###."],                   // 5
    &["..##.", ".#...", "#....", "####.", "#...#", "#...#", ".###."],                   // 6
    &["#####", "....#", "...#.", "..#..", ".#...", ".#...", ".#..."],                   // 7
    &[".###.", "#...#", "#...#", ".###.", "#...#", "#...#", ".###."],                   // 8
    &[".###.", "#...#", "#...#", ".####", "....#", "...#.", ".##.."],                   // 9
    &[".....", "..##.", "..##.", ".....", "..##.", "..##."],                            // :
    &[".....", "..##.", "..##.", ".....", "..##.", "...#.", "..#.."],                   // ;
    &["...#.", "..#..", ".#...", "#....", ".#...", "..#..", "...#."],                   // <
    &[".....", ".....", "#####", ".....", "#####"],                                     // =
    &[".#...", "..#..", "...#.", "....#", "...#.", "..#..", ".#..."],                   // >
    &[".###.", "#...#", "....#", "...#.", "..#..", ".....", "..#.."],                   // ?
    &[".###.", "#...#", "....#", ".##.#", "#.#.#", "#.#.#", ".###."],                   // @
    &[".###.", "#...#", "#...#", "#####", "#...#", "#...#", "#...#"],                   // A
    &["####.", "#...#", "#...#", "####.", "#...#", "#...#", "####."],                   // B
    &[".###.", "#...#", "#....", "#....", "#....", "#...#", ".###."],                   // C
    &["###..", "#..#.", "#...#", "#...#", "#...#", "#..#.", "###.."],                   // D
    &["#####", "#....", "#....", "####.", "#....", "#....", "#####"],                   // E
    &["#####", "#....", "#....", "####.", "#....", "#....", "#...."],                   // F
    &[".###.", "#...#", "#....", "#.###", "#...#", "#...#", ".####"],                   // G
    &["#...#", "#...#", "#...#", "#####", "#...#", "#...#", "#...#"],                   // H
    &[".###.", "..#..", "..#..", "..#..", "..#..", "..#..", ".###."],                   // I
    &["..###", "...#.", "...#.", "...#.", "...#.", "#..#.", ".##.."],                   // J
    &["#...#", "#..#.", "#.#..", "##...", "#.#..", "#..#.", "#...#"],                   // K
    &["#....", "#....", "#....", "#....", "#....", "#....", "#####"],                   // L
    &["#...#", "##.##", "#.#.#", "#.#.#", "#...#", "#...#", "#...#"],                   // M
    &["#...#", "#...#", "##..#", "#.#.#", "#..##", "#...#", "#...#"],                   // N
    &[".###.", "#...#", "#...#", "#...#", "#...#", "#...#", ".###."],                   // O
    &["####.", "#...#", "#...#", "####.", "#....", "#....", "#...."],                   // P
    &[".###.", "#...#", "#...#", "#...#", "#.#.#", "#..#.", ".##.#"],                   // Q
    &["####.", "#...#", "#...#", "####.", "#.#..", "#..#.", "#...#"],                   // R
    &[".####", "#....", "#....", ".###.", "....#", "....#", "####."],                   // S
    &["#####", "..#..", "..#..", "..#..", "..#..", "..#..", "..#.."],                   // T
    &["#...#", "#...#", "#...#", "#...#", "#...#", "#...#", ".###."],                   // U
    &["#...#", "#...#", "#...#", "#...#", "#...#", ".#.#.", "..#.."],                   // V
    &["#...#", "#...#", "#...#", "#.#.#", "#.#.#", "#.#.#", ".#.#."],                   // W
    &["#...#", "#...#", ".#.#.", "..#..", ".#.#.", "#...#", "#...#"],                   // X
    &["#...#", "#...#", ".#.#.", "..#..", "..#..", "..#..", "..#.."],                   // Y
    &["#####", "....#", "...#.", "..#..", ".#...", "#....", "#####"],                   // Z
    &[".###.", ".#...", ".#...", ".#...", ".#...", ".#...", ".###."],                   // [
    &["#....", "#....", ".#...", "..#..", "...#.", "....#", "....#"],                   // \
    &[".###.", "...#.", "...#.", "...#.", "...#.", "...#.", ".###."],                   // ]
    &["..#..", ".#.#.", "#...#"],                                                       // ^
    &[".....", ".....", ".....", ".....", ".....", ".....", ".....", "#####"],          // _
    &[".#...", "..#.."],                                                                // `
    &[".....", ".....", ".###.", "....#", ".####", "#...#", ".####"],                   // a
    &["#....", "#....", "####.", "#...#", "#...#", "#...#", "####."],                   // b
    &[".....", ".....", ".###.", "#....", "#....", "#...#", ".###."],                   // c
    &["....#", "....#", ".####", "#...#", "#...#", "#...#", ".####"],                   // d
    &[".....", ".....", ".###.", "#...#", "#####", "#....", ".###."],                   // e
    &["..##.", ".#..#", ".#...", "###..", ".#...", ".#...", ".#..."],                   // f
    &[".....", ".....", ".####", "#...#", "#...#", "#...#", ".####", "....#", ".###."], // g
    &["#....", "#....", "#.##.", "##..#", "#...#", "#...#", "#...#"],                   // h
    &["..#..", ".....", ".##..", "..#..", "..#..", "..#..", ".###."],                   // i
    &["...#.", ".....", "..##.", "...#.", "...#.", "...#.", "...#.", "#..#.", ".##.."], // j
    &["#....", "#....", "#..#.", "#.#..", "##...", "#.#..", "#..#."],                   // k
    &[".##..", "..#..", "..#..", "..#..", "..#..", "..#..", ".###."],                   // l
    &[".....", ".....", "##.#.", "#.#.#", "#.#.#", "#.#.#", "#.#.#"],                   // m
    &[".....", ".....", "#.##.", "##..#", "#...#", "#...#", "#...#"],                   // n
    &[".....", ".....", ".###.", "#...#", "#...#", "#...#", ".###."],                   // o
    &[".....", ".....", "####.", "#...#", "#...#", "#...#", "####.", "#....", "#...."], // p
    &[".....", ".....", ".####", "#...#", "#...#", "#...#", ".####", "....#", "....#"], // q
    &[".....", ".....", "#.##.", "##..#", "#....", "#....", "#...."],                   // r
    &[".....", ".....", ".####", "#....", ".###.", "....#", "####."],                   // s
    &[".#...", ".#...", "###..", ".#...", ".#...", ".#..#", "..##."],                   // t
    &[".....", ".....", "#...#", "#...#", "#...#", "#..##", ".##.#"],                   // u
    &[".....", ".....", "#...#", "#...#", "#...#", ".#.#.", "..#.."],                   // v
    &[".....", ".....", "#...#", "#...#", "#.#.#", "#.#.#", ".#.#."],                   // w
    &[".....", ".....", "#...#", ".#.#.", "..#..", ".#.#.", "#...#"],                   // x
    &[".....", ".....", "#...#", "#...#", "#...#", "#...#", ".####", "....#", ".###."], // y
    &[".....", ".....", "#####", "...#.", "..#..", ".#...", "#####"],                   // z
    &["...#.", "..#..", "..#..", ".#...", "..#..", "..#..", "...#."],                   // {
    &["..#..", "..#..", "..#..", "..#..", "..#..", "..#..", "..#.."],                   // |
    &[".#...", "..#..", "..#..", "...#.", "..#..", "..#..", ".#..."],                   // }
    &[".....", ".....", ".#...", "#.#.#", "...#."],                                     // ~
];

/// Drawn for characters the font does not have.
const MISSING: [u8; 9] = [0b11111, 0b10001, 0b10001, 0b10001, 0b10001, 0b10001, 0b11111, 0, 0];

/// The parsed font: one row bitmask per glyph row, bit 4 = leftmost column.
/// Built at compile time; a malformed row fails the build.
const GLYPHS: [[u8; 9]; 95] = parse_font();

const fn parse_font() -> [[u8; 9]; 95] {
    let mut out = [[0u8; 9]; 95];
    let mut g = 0;
    while g < SOURCE.len() {
        let rows = SOURCE[g];
        assert!(rows.len() <= GLYPH_HEIGHT as usize, "glyph has too many rows");
        let mut r = 0;
        while r < rows.len() {
            let bytes = rows[r].as_bytes();
            assert!(bytes.len() == GLYPH_WIDTH as usize, "glyph row must be 5 wide");
            let mut bits = 0u8;
            let mut c = 0;
            while c < bytes.len() {
                assert!(bytes[c] == b'#' || bytes[c] == b'.', "glyph rows use '#' and '.'");
                bits = (bits << 1) | (bytes[c] == b'#') as u8;
                c += 1;
            }
            out[g][r] = bits;
            r += 1;
        }
        g += 1;
    }
    out
}

/// The bitmap of `c`: nine rows, bit 4 of each the leftmost column.
pub fn glyph(c: char) -> [u8; 9] {
    match u8::try_from(c) {
        Ok(b) if (FIRST..=LAST).contains(&b) => GLYPHS[(b - FIRST) as usize],
        _ => MISSING,
    }
}

/// Width in image pixels of `text` drawn at `scale` (no trailing gap).
pub fn text_width(text: &str, scale: u32) -> u32 {
    let n = text.chars().count() as u32;
    if n == 0 {
        0
    } else {
        (n * ADVANCE - 1) * scale
    }
}

/// Draws `text` with its top-left corner at `(x, y)`, each font pixel a
/// `scale`×`scale` block. Pixels outside the image are clipped.
pub fn draw_text(img: &mut RgbImage, x: i64, y: i64, text: &str, color: Rgb<u8>, scale: u32) {
    let s = i64::from(scale.max(1));
    for (i, c) in text.chars().enumerate() {
        let gx = x + i as i64 * i64::from(ADVANCE) * s;
        for (row, bits) in glyph(c).iter().enumerate() {
            for col in 0..GLYPH_WIDTH {
                if bits & (1 << (GLYPH_WIDTH - 1 - col)) == 0 {
                    continue;
                }
                for dy in 0..s {
                    for dx in 0..s {
                        put(img, gx + i64::from(col) * s + dx, y + row as i64 * s + dy, color);
                    }
                }
            }
        }
    }
}

/// Draws `text` rotated 90° counter-clockwise (reading bottom to top), with
/// the top-left corner of its bounding box at `(x, y)`; for y-axis labels.
pub fn draw_text_vertical(img: &mut RgbImage, x: i64, y: i64, text: &str, color: Rgb<u8>, scale: u32) {
    let s = i64::from(scale.max(1));
    let len = i64::from(text_width(text, 1));
    for (i, c) in text.chars().enumerate() {
        let gx = i as i64 * i64::from(ADVANCE);
        for (row, bits) in glyph(c).iter().enumerate() {
            for col in 0..GLYPH_WIDTH {
                if bits & (1 << (GLYPH_WIDTH - 1 - col)) == 0 {
                    continue;
                }
                // Unrotated (u, v) = (gx + col, row) maps to (row, len - 1 - u).
                let (px, py) = (row as i64, len - 1 - (gx + i64::from(col)));
                for dy in 0..s {
                    for dx in 0..s {
                        put(img, x + px * s + dx, y + py * s + dy, color);
                    }
                }
            }
        }
    }
}

fn put(img: &mut RgbImage, x: i64, y: i64, color: Rgb<u8>) {
    if x >= 0 && y >= 0 && x < i64::from(img.width()) && y < i64::from(img.height()) {
        img.put_pixel(x as u32, y as u32, color);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const WHITE: Rgb<u8> = Rgb([255, 255, 255]);
    const BLACK: Rgb<u8> = Rgb([0, 0, 0]);

    fn render(text: &str, scale: u32) -> RgbImage {
        let mut img = RgbImage::from_pixel(text_width(text, scale) + 2, GLYPH_HEIGHT * scale + 2, WHITE);
        draw_text(&mut img, 1, 1, text, BLACK, scale);
        img
    }

    /// The set pixels of one rendered glyph, as a 9-row bitmap read back from the image.
    fn read_back(img: &RgbImage, index: u32) -> [u8; 9] {
        let mut rows = [0u8; 9];
        for (r, row) in rows.iter_mut().enumerate() {
            for c in 0..GLYPH_WIDTH {
                if *img.get_pixel(1 + index * ADVANCE + c, 1 + r as u32) == BLACK {
                    *row |= 1 << (GLYPH_WIDTH - 1 - c);
                }
            }
        }
        rows
    }

    #[test]
    fn digits_are_pairwise_distinct_and_read_back_from_the_image() {
        let img = render("0123456789", 1);
        let digits: Vec<[u8; 9]> = (0..10).map(|i| read_back(&img, i)).collect();
        for (i, a) in digits.iter().enumerate() {
            assert_eq!(*a, glyph(char::from(b'0' + i as u8)), "digit {i} drawn as in the table");
            assert!(a.iter().map(|r| r.count_ones()).sum::<u32>() >= 7, "digit {i} has ink");
            for (j, b) in digits.iter().enumerate().skip(i + 1) {
                // Distinguishable: at least two pixels differ, not just one.
                let diff: u32 = a.iter().zip(b).map(|(x, y)| (x ^ y).count_ones()).sum();
                assert!(diff >= 2, "digits {i} and {j} differ in {diff} pixels");
            }
        }
    }

    #[test]
    fn every_printable_glyph_but_space_has_ink_and_letters_differ() {
        for b in b'!'..=b'~' {
            assert!(glyph(char::from(b)).iter().any(|&r| r != 0), "{:?} is blank", char::from(b));
        }
        assert_eq!(glyph(' '), [0; 9]);
        let mut seen = std::collections::HashMap::new();
        for b in (b'A'..=b'Z').chain(b'a'..=b'z').chain(b'0'..=b'9') {
            if let Some(other) = seen.insert(glyph(char::from(b)), b) {
                panic!("{:?} and {:?} share a glyph", char::from(other), char::from(b));
            }
        }
    }

    #[test]
    fn one_is_drawn_where_expected() {
        // '1': stem in column 2 on rows 1..=6, foot on row 6 from column 1 to 3.
        let img = render("1", 1);
        for r in 1..=6 {
            assert_eq!(*img.get_pixel(1 + 2, 1 + r), BLACK, "row {r}");
        }
        assert_eq!(*img.get_pixel(1 + 1, 1 + 6), BLACK);
        assert_eq!(*img.get_pixel(1 + 3, 1 + 6), BLACK);
        assert_eq!(*img.get_pixel(1, 1 + 3), WHITE);
        assert_eq!(*img.get_pixel(1 + 4, 1 + 3), WHITE);
    }

    #[test]
    fn scaling_turns_each_font_pixel_into_a_block() {
        let small = render("7", 1);
        let big = render("7", 3);
        assert_eq!(big.width(), 3 * GLYPH_WIDTH + 2);
        for y in 0..GLYPH_HEIGHT {
            for x in 0..GLYPH_WIDTH {
                let want = *small.get_pixel(1 + x, 1 + y);
                for d in 0..9 {
                    assert_eq!(*big.get_pixel(1 + 3 * x + d % 3, 1 + 3 * y + d / 3), want);
                }
            }
        }
    }

    #[test]
    fn width_and_clipping() {
        assert_eq!(text_width("", 2), 0);
        assert_eq!(text_width("ab", 1), 11);
        assert_eq!(text_width("ab", 2), 22);
        // Drawing off the image's edges must not panic.
        let mut img = RgbImage::from_pixel(4, 4, WHITE);
        draw_text(&mut img, -3, -3, "W8", BLACK, 2);
        draw_text_vertical(&mut img, 2, -20, "loss", BLACK, 1);
    }

    #[test]
    fn vertical_text_is_the_horizontal_text_rotated() {
        let text = "lr 5";
        let (w, h) = (text_width(text, 1), GLYPH_HEIGHT);
        let mut flat = RgbImage::from_pixel(w, h, WHITE);
        draw_text(&mut flat, 0, 0, text, BLACK, 1);
        let mut up = RgbImage::from_pixel(h, w, WHITE);
        draw_text_vertical(&mut up, 0, 0, text, BLACK, 1);
        for y in 0..h {
            for x in 0..w {
                assert_eq!(flat.get_pixel(x, y), up.get_pixel(y, w - 1 - x));
            }
        }
    }
}
