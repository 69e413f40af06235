//! Certificate fingerprints: `SHA256:` and the hex SHA-256 of the certificate's DER encoding.

use std::fmt;
use std::str::FromStr;

use sha2::{Digest, Sha256};

use crate::ServerError;

/// The SHA-256 of a certificate (DER), shown as `SHA256:<64 hex digits>`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Fingerprint(pub [u8; 32]);

impl Fingerprint {
    /// The fingerprint of a DER-encoded certificate.
    pub fn of(der: &[u8]) -> Self {
        Fingerprint(Sha256::digest(der).into())
    }
}

impl fmt::Display for Fingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SHA256:")?;
        for b in self.0 {
            write!(f, "{b:02x}")?;
        }
        Ok(())
    }
}

impl FromStr for Fingerprint {
    type Err = ServerError;

    /// Parses `SHA256:<hex>` (colons between hex pairs and upper case are accepted too).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || ServerError::InvalidConfig {
            setting: "tls-fingerprint",
            value: s.to_owned(),
            expected: "SHA256: followed by 64 hex digits",
        };
        let hex: String = s.trim().strip_prefix("SHA256:").ok_or_else(bad)?.chars().filter(|c| *c != ':').collect();
        if hex.len() != 64 {
            return Err(bad());
        }
        let mut out = [0u8; 32];
        for (i, byte) in out.iter_mut().enumerate() {
            *byte = u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).map_err(|_| bad())?;
        }
        Ok(Fingerprint(out))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fingerprints_print_and_parse_back() {
        let f = Fingerprint::of(b"certificate");
        let shown = f.to_string();
        assert!(shown.starts_with("SHA256:") && shown.len() == 7 + 64, "{shown}");
        assert_eq!(shown.parse::<Fingerprint>().unwrap(), f);
        let with_colons: String = shown.as_bytes()[7..]
            .chunks(2)
            .map(|c| std::str::from_utf8(c).unwrap().to_uppercase())
            .collect::<Vec<_>>()
            .join(":");
        assert_eq!(format!("SHA256:{with_colons}").parse::<Fingerprint>().unwrap(), f);
        for bad in ["", "SHA256:", "MD5:00", "SHA256:zz", &shown[..20]] {
            assert!(bad.parse::<Fingerprint>().is_err(), "{bad:?}");
        }
    }
}
