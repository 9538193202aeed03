//! The masker: exact outputs, and the same output however the stream is cut.

use super::*;

fn mask(values: &[&str]) -> Mask {
    Mask::new(values.iter().map(|value| value.as_bytes()))
}

/// `text` through a stream, cut at `cuts` (ascending byte positions); checks that no more
/// than the longest value less one byte is ever held back.
fn streamed(mask: &Mask, text: &str, cuts: &[usize]) -> String {
    let longest = mask.values.iter().map(|value| value.len()).max().unwrap_or(0);
    let mut stream = MaskStream::new(mask.clone());
    let mut out = Vec::new();
    let mut from = 0;
    for &cut in cuts.iter().chain([text.len()].iter()) {
        out.extend(stream.push(&text.as_bytes()[from..cut]));
        assert!(stream.held() < longest.max(1), "held {} of {text:?} at {cut}", stream.held());
        from = cut;
    }
    out.extend(stream.finish());
    assert_eq!(stream.held(), 0);
    String::from_utf8(out).expect("text stays text")
}

/// Checks `text` masks to `expected` at once, in two chunks cut at every byte position,
/// in three chunks cut at every pair of positions, and one byte at a time.
fn assert_masked(values: &[&str], text: &str, expected: &str) {
    let mask = mask(values);
    assert_eq!(mask.text(text), expected, "at once");
    for cut in 0..=text.len() {
        assert_eq!(streamed(&mask, text, &[cut]), expected, "cut at {cut}");
        for second in cut..=text.len() {
            assert_eq!(streamed(&mask, text, &[cut, second]), expected, "cut at {cut}, {second}");
        }
    }
    let every: Vec<usize> = (1..text.len()).collect();
    assert_eq!(streamed(&mask, text, &every), expected, "byte by byte");
}

#[test]
fn a_value_is_masked_wherever_the_output_is_cut() {
    assert_masked(&["hunter2"], "pw=hunter2\n", "pw=***\n");
    assert_masked(&["hunter2"], "hunter2hunter2 hunter hunter2", "****** hunter ***");
    assert_masked(&["s3cr3t"], "no secret here: s3cr3 s3cr3t", "no secret here: s3cr3 ***");
    assert_masked(&["s3cr3t"], "ends with a prefix s3cr", "ends with a prefix s3cr");
}

#[test]
fn values_that_overlap_or_are_prefixes_of_each_other_are_masked_as_their_union() {
    // Prefixes: the longer one wins where it matches, the shorter one elsewhere.
    assert_masked(&["abc", "abcdef"], "xabcdefy abcz", "x***y ***z");
    assert_masked(&["abcdef", "abc"], "abcde", "***de");
    // Overlaps: neither half shows.
    assert_masked(&["abcd", "cdef"], "[abcdef]", "[***]");
    assert_masked(&["abcd", "cdef"], "[cdef][abcd][abcdcdef]", "[***][***][******]");
    // A value inside another.
    assert_masked(&["tokenvalue", "enva"], "tokenvalue envalope", "*** ***lope");
}

#[test]
fn a_value_of_several_lines_is_masked_whole_and_line_by_line() {
    let key = "-----KEY-----\nline one\r\nline two\n\n   \n";
    let mask = mask(&[key]);
    assert_eq!(mask.text(&format!("[{key}]")), "[***]");
    assert_eq!(mask.text("  line one\n  line two\n"), "  ***\n  ***\n");
    assert_eq!(mask.text("-----KEY-----"), "***");
    assert_eq!(mask.text("a    b"), "a    b", "blank lines mask nothing");
    assert_masked(&["one\ntwo"], "> one\n> two\n> one\ntwo", "> ***\n> ***\n> ***");
}

#[test]
fn without_values_nothing_is_held_back_or_changed() {
    let none = Mask::new(std::iter::empty());
    assert!(none.is_empty());
    let mut stream = MaskStream::new(none.clone());
    assert_eq!(stream.push(b"all of it"), b"all of it");
    assert_eq!(stream.held(), 0);
    assert_eq!(none.text("text ***"), "text ***");
    assert!(Mask::new([&b""[..]]).is_empty(), "an empty value masks nothing");
}

#[test]
fn only_what_may_start_a_value_is_held_back() {
    let mut stream = MaskStream::new(mask(&["secret"]));
    assert_eq!(stream.push(b"a line\nand sec"), b"a line\nand ");
    assert_eq!(stream.held(), 3);
    assert_eq!(stream.push(b"ond"), b"second");
    assert_eq!(stream.push(b" secre"), b" ");
    assert_eq!(stream.push(b"t!"), b"***!");
    assert_eq!(stream.push(b"se"), b"");
    assert_eq!(stream.finish(), b"se", "the end lets the rest out");
}

#[test]
fn text_around_values_stays_valid_utf8() {
    assert_masked(&["pässwörd"], "é pässwörd ü pässw", "é *** ü pässw");
}
