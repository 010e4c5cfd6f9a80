//! The built-in detectors: what each finds, and the check a match must pass (a pattern alone
//! takes dates for phone numbers and words for tokens).

/// The names of the built-in detectors, in the order they are documented.
pub const BUILTINS: [&str; 4] = ["secrets", "email", "phone", "iban"];

/// What a match of a detector's pattern must also satisfy to count.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Check {
    /// Every match counts (named patterns: the operator's regex is the whole rule).
    None,
    /// A token must hold a digit: random keys always do, words such as `sk-learn-estimators`
    /// do not. A PEM block counts as it is.
    Secret,
    /// 7 to 15 digits (E.164 allows at most 15).
    Phone,
    /// The ISO 13616 check digits (mod 97), over 15 to 34 characters.
    Iban,
}

/// Secrets: private keys, cloud keys, JWTs and the tokens of well-known services. Each has a
/// literal prefix, so that text without any is passed over at memchr speed. `\b` is ASCII.
const SECRETS: &[&str] = &[
    // PEM private keys of every kind (PKCS#1, PKCS#8, SEC1, OpenSSH, encrypted, PGP): the
    // block to its end line, or to the end of the text when it has none.
    r"(?s)-----BEGIN (?:[A-Z0-9]+ )*PRIVATE KEY(?: BLOCK)?-----.*?(?:-----END (?:[A-Z0-9]+ )*PRIVATE KEY(?: BLOCK)?-----|\z)",
    // AWS access key ids (long-term, temporary, and the other unique-id prefixes).
    r"\b(?:AKIA|ASIA|ABIA|ACCA|AGPA|AIDA|AROA|ANPA|ANVA|AIPA)[A-Z0-9]{16}\b",
    // JWTs and other compact JWS: a JSON header and payload, base64url.
    r"\beyJ[A-Za-z0-9_-]{8,}\.eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]*",
    // GitHub: classic tokens and fine-grained personal access tokens.
    r"\bgh[pousr]_[A-Za-z0-9]{36,255}\b",
    r"\bgithub_pat_[A-Za-z0-9_]{22,255}\b",
    // GitLab personal access tokens.
    r"\bglpat-[A-Za-z0-9_-]{20,}",
    // Slack tokens and incoming webhooks.
    r"\bxox[abposr]-[A-Za-z0-9-]{10,}",
    r"https://hooks\.slack\.com/services/[A-Za-z0-9/_-]{20,}",
    // Stripe secret and restricted keys.
    r"\b[rs]k_(?:live|test)_[A-Za-z0-9]{16,}\b",
    // Google API keys.
    r"\bAIza[0-9A-Za-z_-]{35}",
    // OpenAI and Anthropic API keys.
    r"\bsk-(?:ant-|proj-|svcacct-|admin-)?[A-Za-z0-9_-]{20,}",
    // npm, Hugging Face and SendGrid tokens.
    r"\bnpm_[A-Za-z0-9]{36}\b",
    r"\bhf_[A-Za-z0-9]{34,}\b",
    r"\bSG\.[A-Za-z0-9_-]{22}\.[A-Za-z0-9_-]{43}",
    // Azure storage account keys in connection strings.
    r"\bAccountKey=[A-Za-z0-9+/]{40,}={0,2}",
];

/// Email addresses (the common form: dot-atom local part, a domain with a letters-only TLD).
const EMAIL: &str = r"[A-Za-z0-9._%+-]+@[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?)*\.[A-Za-z]{2,63}\b";

/// Phone numbers: international (`+` and a country code, spaces, dots, dashes and brackets
/// between groups) and the North American form with separators (`(555) 123-4567`,
/// `555.123.4567`); bare runs of digits and dates are not phone numbers.
const PHONE: &str = r"\+[1-9][0-9]{0,2}(?:[ .-]?\(?[0-9]{1,4}\)?){2,6}|(?:\([2-9][0-9]{2}\) ?|\b[2-9][0-9]{2}[ .-])[0-9]{3}[ .-][0-9]{4}\b";

/// IBANs, printed plain or in groups of four.
const IBAN: &str = r"\b[A-Z]{2}[0-9]{2}(?: ?[A-Z0-9]{4}){2,7}(?: ?[A-Z0-9]{1,4})?\b";

/// The pattern and check of a built-in detector, with `\b` made ASCII (a Unicode word
/// boundary would keep the regex engine off its DFA).
pub(crate) fn builtin(name: &str) -> Option<(String, Check)> {
    let (pattern, check) = match name {
        "secrets" => (
            SECRETS
                .iter()
                .map(|p| format!("(?:{p})"))
                .collect::<Vec<_>>()
                .join("|"),
            Check::Secret,
        ),
        "email" => (EMAIL.to_owned(), Check::None),
        "phone" => (PHONE.to_owned(), Check::Phone),
        "iban" => (IBAN.to_owned(), Check::Iban),
        _ => return None,
    };
    Some((pattern.replace(r"\b", r"(?-u:\b)"), check))
}

impl Check {
    /// The part of `found` that counts: all of it, a shorter start of it (an IBAN followed by
    /// more groups of four), or nothing.
    pub(crate) fn accept(self, found: &str) -> Option<usize> {
        match self {
            Check::None => Some(found.len()),
            Check::Secret => (found.starts_with("-----BEGIN")
                || found.bytes().any(|b| b.is_ascii_digit()))
            .then_some(found.len()),
            Check::Phone => {
                let digits = found.bytes().filter(u8::is_ascii_digit).count();
                (7..=15).contains(&digits).then_some(found.len())
            }
            Check::Iban => iban_prefix(found),
        }
    }
}

/// The longest start of `found`, ending at a group, that is a valid IBAN.
fn iban_prefix(found: &str) -> Option<usize> {
    let mut end = found.len();
    loop {
        if iban_valid(&found[..end]) {
            return Some(end);
        }
        // Drop the last group (and the space before it).
        let cut = found[..end].rfind(' ')?;
        end = cut;
    }
}

fn iban_valid(text: &str) -> bool {
    let compact: Vec<u8> = text.bytes().filter(|b| *b != b' ').collect();
    if !(15..=34).contains(&compact.len()) {
        return false;
    }
    // The first four characters go to the end; letters count as 10..=35; mod 97 must be 1.
    let (head, rest) = compact.split_at(4);
    let mut remainder: u32 = 0;
    for b in rest.iter().chain(head) {
        let value = match b {
            b'0'..=b'9' => u32::from(b - b'0'),
            b'A'..=b'Z' => u32::from(b - b'A') + 10,
            _ => return false,
        };
        remainder = if value >= 10 {
            (remainder * 100 + value) % 97
        } else {
            (remainder * 10 + value) % 97
        };
    }
    remainder == 1
}
