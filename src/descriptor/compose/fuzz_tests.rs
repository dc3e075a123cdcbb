//! Malformed input of every kind must end in an error, never a panic: the
//! loader reads descriptors written by anyone allowed to publish one.

use super::tests::{load_text, KITCHEN_SINK};

/// A tiny deterministic generator, so the fuzz-ish inputs are the same on every run.
struct XorShift(u64);

impl XorShift {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn pick<'a>(&mut self, items: &[&'a str]) -> &'a str {
        items[(self.next() % items.len() as u64) as usize]
    }
}

#[test]
fn malformed_input_never_panics() {
    let mut inputs: Vec<String> = Vec::new();
    // Every prefix of a rich descriptor (cut at character boundaries).
    for (i, _) in KITCHEN_SINK.char_indices().step_by(3) {
        inputs.push(KITCHEN_SINK[..i].to_string());
    }
    // Deep nesting of every kind.
    inputs.push("[".repeat(100_000));
    inputs.push(format!("{}1{}", "[".repeat(5000), "]".repeat(5000)));
    inputs.push(format!("services: {}1{}", "{a: ".repeat(3000), "}".repeat(3000)));
    let mut block = String::from("services:\n");
    for depth in 1..300 {
        block.push_str(&" ".repeat(depth));
        block.push_str("a:\n");
    }
    inputs.push(block);
    inputs.push(format!("services:\n  a:\n    image: \"{}\"\n", "${A:-".repeat(5000)));
    inputs.push(format!("services:\n  a:\n    image: \"{}x{}\"\n", "${A:-".repeat(5000), "}".repeat(5000)));
    // An alias bomb.
    let mut bomb = String::from("a0: &a0 [x, x, x, x, x, x, x, x, x, x]\n");
    for i in 1..12 {
        let prev = i - 1;
        bomb.push_str(&format!("a{i}: &a{i} [*a{prev}, *a{prev}, *a{prev}, *a{prev}, *a{prev}, *a{prev}, *a{prev}, *a{prev}, *a{prev}, *a{prev}]\n"));
    }
    inputs.push(bomb);
    // Random soups of YAML and Compose fragments.
    let pieces = [
        "services:",
        "\n",
        "  ",
        "    ",
        "- ",
        ": ",
        "web",
        "image",
        "ports",
        "\"80:80\"",
        "volumes",
        "./a:/b:ro",
        "{",
        "}",
        "[",
        "]",
        ",",
        "&a ",
        "*a",
        "<<: ",
        "!reset ",
        "${",
        "$",
        "}",
        "null",
        "~",
        "'",
        "\"",
        "#",
        "healthcheck",
        "interval",
        "1m",
        "depends_on",
        "networks",
        "build",
        ".",
        "8000-8010:80",
        "::",
        "é",
        "\t",
        "-1",
        "1e999",
        "?",
        "|",
        ">",
        "%",
        "@",
        "`",
        "\u{0}",
        "\u{feff}",
    ];
    let mut rng = XorShift(0x5eed_cafe_f00d_d00d);
    for _ in 0..3000 {
        let len = 1 + rng.next() % 60;
        inputs.push((0..len).map(|_| rng.pick(&pieces)).collect());
    }
    // Random bytes, made valid UTF-8.
    for _ in 0..500 {
        let len = rng.next() % 200;
        let bytes: Vec<u8> = (0..len).map(|_| (rng.next() & 0xff) as u8).collect();
        inputs.push(String::from_utf8_lossy(&bytes).into_owned());
    }
    for input in &inputs {
        let _ = load_text(input);
    }
}
