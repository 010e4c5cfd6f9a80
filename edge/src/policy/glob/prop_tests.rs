//! Property tests of the name globs: `glob_match` agrees with a plain dynamic-programming
//! matcher on every pattern and text.

use proptest::prelude::*;

use super::glob_match;

/// `*` matches any run of characters, everything else itself.
fn reference(pattern: &str, text: &str) -> bool {
    let p: Vec<char> = pattern.chars().collect();
    let t: Vec<char> = text.chars().collect();
    let mut m = vec![false; t.len() + 1];
    m[0] = true;
    for pc in &p {
        let mut next = vec![false; t.len() + 1];
        for j in 0..=t.len() {
            next[j] = if *pc == '*' {
                m[j] || (j > 0 && next[j - 1])
            } else {
                j > 0 && m[j - 1] && t[j - 1] == *pc
            };
        }
        m = next;
    }
    m[t.len()]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn glob_match_agrees_with_the_reference(pattern in "[ab*é]{0,8}", text in "[abé]{0,10}") {
        prop_assert_eq!(glob_match(&pattern, &text), reference(&pattern, &text));
    }

    #[test]
    fn a_glob_matches_its_own_text_and_star_everything(text in "\\PC{0,12}") {
        let literal = text.replace('*', "");
        prop_assert!(glob_match(&literal, &literal));
        prop_assert!(glob_match("*", &text));
        let around = format!("*{literal}*");
        let inside = format!("x{literal}y");
        prop_assert!(glob_match(&around, &inside));
    }
}
