//! Just enough distinguished-name handling to compare DNs the way a
//! directory does: attribute types and values are case-insensitive, spaces
//! around separators do not count, and `\,` equals `\2C`.
//!
//! Values are unescaped and escaped again ([`ldap3::dn_escape`]) before
//! comparing, so `cn=a\,cn=b` never equals `cn=a,cn=b`.

/// The DN in one canonical spelling, for comparisons only.
pub(crate) fn normalize(dn: &str) -> String {
    rdns(dn).join(",")
}

/// Whether `dn` is `base` or below it.
pub(crate) fn is_under(dn: &str, base: &str) -> bool {
    let (dn, base) = (rdns(dn), rdns(base));
    !base.is_empty() && dn.len() >= base.len() && dn[dn.len() - base.len()..] == base[..]
}

/// The attribute and (unescaped) value of the first RDN: `cn=deployers,...`
/// gives `("cn", "deployers")`. `None` for a multi-valued first RDN.
pub(crate) fn first_rdn(dn: &str) -> Option<(String, String)> {
    let first = split_unescaped(dn, b',').into_iter().next()?;
    if split_unescaped(first, b'+').len() != 1 {
        return None;
    }
    let (attr, value) = first.split_once('=')?;
    Some((attr.trim().to_string(), unescape(value.trim())))
}

/// Normalised RDNs, leftmost first.
fn rdns(dn: &str) -> Vec<String> {
    split_unescaped(dn, b',')
        .into_iter()
        .map(|rdn| {
            let mut parts: Vec<String> = split_unescaped(rdn, b'+')
                .into_iter()
                .map(|ava| match ava.split_once('=') {
                    Some((attr, value)) => format!(
                        "{}={}",
                        attr.trim().to_ascii_lowercase(),
                        ldap3::dn_escape(unescape(value.trim()).to_lowercase())
                    ),
                    None => ava.trim().to_lowercase(),
                })
                .collect();
            // `cn=a+uid=b` equals `uid=b+cn=a`.
            parts.sort();
            parts.join("+")
        })
        .filter(|rdn| !rdn.is_empty())
        .collect()
}

/// Splits at `sep` where it is not escaped with a backslash.
fn split_unescaped(text: &str, sep: u8) -> Vec<&str> {
    let bytes = text.as_bytes();
    let (mut parts, mut start, mut i) = (Vec::new(), 0, 0);
    while i < bytes.len() {
        match bytes[i] {
            b'\\' => i += 2,
            c if c == sep => {
                parts.push(&text[start..i]);
                start = i + 1;
                i += 1;
            }
            _ => i += 1,
        }
    }
    if start <= text.len() {
        parts.push(&text[start.min(text.len())..]);
    }
    parts
}

/// `\,` → `,` and `\2C` → `,` (hex pairs are bytes of UTF-8).
fn unescape(value: &str) -> String {
    let bytes = value.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'\\' && i + 1 < bytes.len() {
            let hex = bytes
                .get(i + 1..i + 3)
                .and_then(|h| std::str::from_utf8(h).ok())
                .and_then(|h| u8::from_str_radix(h, 16).ok());
            match hex {
                Some(b) => {
                    out.push(b);
                    i += 3;
                }
                None => {
                    out.push(bytes[i + 1]);
                    i += 2;
                }
            }
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dns_compare_like_the_directory_compares_them() {
        assert_eq!(
            normalize("CN=Deployers, OU=Groups,dc=Example,dc=org"),
            normalize("cn=deployers,ou=groups,dc=example,dc=org")
        );
        assert_eq!(normalize("cn=a\\,b,dc=x"), normalize("cn=a\\2Cb,dc=x"));
        assert_ne!(normalize("cn=a\\,cn=b,dc=x"), normalize("cn=a,cn=b,dc=x"), "an escaped comma is not a separator");
        assert_eq!(normalize("cn=a+uid=b,dc=x"), normalize("uid=b+cn=a,dc=x"));
        assert!(is_under("cn=deployers,ou=groups,dc=example,dc=org", "OU=groups, dc=example,dc=org"));
        assert!(!is_under("cn=x,ou=evil-groups,dc=example,dc=org", "ou=groups,dc=example,dc=org"));
        assert!(!is_under("cn=x,ou=groups\\,dc=example,dc=org", "dc=example,dc=org,dc=com"));
        assert_eq!(first_rdn("cn=a\\,b,ou=g"), Some(("cn".into(), "a,b".into())));
        assert_eq!(first_rdn("cn=a+uid=b,ou=g"), None);
        assert_eq!(first_rdn("cn=caf\\C3\\A9,ou=g").map(|r| r.1), Some("café".into()));
    }
}
