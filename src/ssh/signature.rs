//! Verifying an SSH signature (RFC 4253 section 6.6, RFC 8332, RFC 5656, RFC 8709) made by an
//! SSH public key: what a certificate authority's signature over a host certificate needs.
//! libssh2 verifies the server's own key exchange signature but exposes no verifier, so this
//! uses the OpenSSL that libssh2 already links (through the `openssl` crate).
//!
//! Keys: `ssh-ed25519`, `ssh-rsa` (signatures `rsa-sha2-512`, `rsa-sha2-256`, `ssh-rsa`
//! with SHA-1) and `ecdsa-sha2-nistp256/384/521`. Security-key (`sk-`) and DSA keys are
//! refused as unsupported, naming the type.

use openssl::bn::{BigNum, BigNumContext};
use openssl::ec::{EcGroup, EcKey, EcPoint};
use openssl::ecdsa::EcdsaSig;
use openssl::hash::MessageDigest;
use openssl::nid::Nid;
use openssl::pkey::{Id, PKey};
use openssl::rsa::Rsa;
use openssl::sign::Verifier;

use super::wire::{Reader, Truncated};

/// Why a signature was not accepted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    /// The signing key is of a type tether cannot verify.
    #[error("tether cannot verify signatures of {0} keys (it verifies ssh-ed25519, ssh-rsa and ecdsa-sha2-nistp256/384/521)")]
    UnsupportedKey(String),
    /// The signature's algorithm does not belong to the key's type.
    #[error("a {algorithm} signature cannot come from a {key_type} key")]
    AlgorithmMismatch {
        /// The signature's algorithm name.
        algorithm: String,
        /// The key's type.
        key_type: String,
    },
    /// The key or the signature is not well formed.
    #[error("the {what} is malformed ({why})")]
    Malformed {
        /// `key` or `signature`.
        what: &'static str,
        /// Which field.
        why: String,
    },
    /// The signature does not verify: the data was not signed by this key.
    #[error("the signature does not verify")]
    Invalid,
}

/// The algorithm name of a signature blob (`rsa-sha2-512`), if it has one.
pub fn algorithm(signature: &[u8]) -> Option<String> {
    Reader::new(signature)
        .text("algorithm")
        .ok()
        .map(str::to_string)
}

/// Checks that `signature` (an SSH signature blob: algorithm name, then the signature bytes)
/// is `key`'s (an SSH public key blob) over `data`.
pub fn verify(key: &[u8], signature: &[u8], data: &[u8]) -> Result<(), SignatureError> {
    let malformed = |what| {
        move |t: Truncated| SignatureError::Malformed {
            what,
            why: t.to_string(),
        }
    };
    let mut k = Reader::new(key);
    let key_type = k.text("type").map_err(malformed("key"))?.to_string();
    let mut s = Reader::new(signature);
    let alg = s
        .text("algorithm")
        .map_err(malformed("signature"))?
        .to_string();
    let sig = s
        .string("signature bytes")
        .map_err(malformed("signature"))?;
    let mismatch = || SignatureError::AlgorithmMismatch {
        algorithm: alg.clone(),
        key_type: key_type.clone(),
    };
    let ok = match key_type.as_str() {
        "ssh-ed25519" => {
            if alg != "ssh-ed25519" {
                return Err(mismatch());
            }
            let public = k.string("public key").map_err(malformed("key"))?;
            let pkey = PKey::public_key_from_raw_bytes(public, Id::ED25519)
                .map_err(|e| bad_key(e.to_string()))?;
            Verifier::new_without_digest(&pkey)
                .and_then(|mut v| v.verify_oneshot(sig, data))
                .unwrap_or(false)
        }
        "ssh-rsa" => {
            let digest = match alg.as_str() {
                "rsa-sha2-512" => MessageDigest::sha512(),
                "rsa-sha2-256" => MessageDigest::sha256(),
                "ssh-rsa" => MessageDigest::sha1(),
                _ => return Err(mismatch()),
            };
            let e = k.mpint("exponent").map_err(malformed("key"))?;
            let n = k.mpint("modulus").map_err(malformed("key"))?;
            let rsa = BigNum::from_slice(n)
                .and_then(|n| Ok((n, BigNum::from_slice(e)?)))
                .and_then(|(n, e)| Rsa::from_public_components(n, e))
                .map_err(|e| bad_key(e.to_string()))?;
            // ssh-keygen may drop leading zero bytes of the signature; OpenSSL wants the
            // modulus' length (OpenSSH's ssh_rsa_verify pads the same way).
            let size = rsa.size() as usize;
            if sig.len() > size {
                return Err(SignatureError::Invalid);
            }
            let mut padded = vec![0u8; size - sig.len()];
            padded.extend_from_slice(sig);
            let pkey = PKey::from_rsa(rsa).map_err(|e| bad_key(e.to_string()))?;
            Verifier::new(digest, &pkey)
                .and_then(|mut v| {
                    v.update(data)?;
                    v.verify(&padded)
                })
                .unwrap_or(false)
        }
        "ecdsa-sha2-nistp256" | "ecdsa-sha2-nistp384" | "ecdsa-sha2-nistp521" => {
            if alg != key_type {
                return Err(mismatch());
            }
            let (nid, digest) = match key_type.as_str() {
                "ecdsa-sha2-nistp256" => (Nid::X9_62_PRIME256V1, MessageDigest::sha256()),
                "ecdsa-sha2-nistp384" => (Nid::SECP384R1, MessageDigest::sha384()),
                _ => (Nid::SECP521R1, MessageDigest::sha512()),
            };
            let _curve = k.string("curve").map_err(malformed("key"))?;
            let point = k.string("public point").map_err(malformed("key"))?;
            let mut rs = Reader::new(sig);
            let r = rs.mpint("r").map_err(malformed("signature"))?;
            let s_ = rs.mpint("s").map_err(malformed("signature"))?;
            let key = EcGroup::from_curve_name(nid)
                .and_then(|group| {
                    let mut ctx = BigNumContext::new()?;
                    let point = EcPoint::from_bytes(&group, point, &mut ctx)?;
                    EcKey::from_public_key(&group, &point)
                })
                .map_err(|e| bad_key(e.to_string()))?;
            let digest = openssl::hash::hash(digest, data).map_err(|e| bad_key(e.to_string()))?;
            BigNum::from_slice(r)
                .and_then(|r| Ok((r, BigNum::from_slice(s_)?)))
                .and_then(|(r, s)| EcdsaSig::from_private_components(r, s))
                .and_then(|sig| sig.verify(&digest, &key))
                .unwrap_or(false)
        }
        other => return Err(SignatureError::UnsupportedKey(other.to_string())),
    };
    if ok {
        Ok(())
    } else {
        Err(SignatureError::Invalid)
    }
}

fn bad_key(why: String) -> SignatureError {
    SignatureError::Malformed { what: "key", why }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ssh::wire::put_string;

    fn ed25519_key(public: &[u8]) -> Vec<u8> {
        let mut key = Vec::new();
        put_string(&mut key, b"ssh-ed25519");
        put_string(&mut key, public);
        key
    }

    #[test]
    fn ed25519_signatures_verify_and_forgeries_do_not() {
        let private = PKey::generate_ed25519().unwrap();
        let public = private.raw_public_key().unwrap();
        let data = b"signed bytes";
        let mut signer = openssl::sign::Signer::new_without_digest(&private).unwrap();
        let raw = signer.sign_oneshot_to_vec(data).unwrap();
        let mut sig = Vec::new();
        put_string(&mut sig, b"ssh-ed25519");
        put_string(&mut sig, &raw);
        let key = ed25519_key(&public);
        assert_eq!(verify(&key, &sig, data), Ok(()));
        assert_eq!(
            verify(&key, &sig, b"other bytes"),
            Err(SignatureError::Invalid)
        );
        let mut wrong_alg = Vec::new();
        put_string(&mut wrong_alg, b"rsa-sha2-256");
        put_string(&mut wrong_alg, &raw);
        assert!(matches!(
            verify(&key, &wrong_alg, data),
            Err(SignatureError::AlgorithmMismatch { .. })
        ));
        assert!(matches!(
            verify(&key[..10], &sig, data),
            Err(SignatureError::Malformed { what: "key", .. })
        ));
        let mut dsa = Vec::new();
        put_string(&mut dsa, b"ssh-dss");
        assert_eq!(
            verify(&dsa, &sig, data),
            Err(SignatureError::UnsupportedKey("ssh-dss".into()))
        );
    }

    #[test]
    fn rsa_and_ecdsa_signatures_verify() {
        let data = b"certificate body";
        let rsa = Rsa::generate(2048).unwrap();
        let mut key = Vec::new();
        put_string(&mut key, b"ssh-rsa");
        put_string(&mut key, &mpint(&rsa.e().to_vec()));
        put_string(&mut key, &mpint(&rsa.n().to_vec()));
        let pkey = PKey::from_rsa(rsa).unwrap();
        let mut signer = openssl::sign::Signer::new(MessageDigest::sha512(), &pkey).unwrap();
        signer.update(data).unwrap();
        let mut sig = Vec::new();
        put_string(&mut sig, b"rsa-sha2-512");
        put_string(&mut sig, &signer.sign_to_vec().unwrap());
        assert_eq!(verify(&key, &sig, data), Ok(()));
        assert_eq!(verify(&key, &sig, b"x"), Err(SignatureError::Invalid));

        let group = EcGroup::from_curve_name(Nid::X9_62_PRIME256V1).unwrap();
        let ec = EcKey::generate(&group).unwrap();
        let mut ctx = BigNumContext::new().unwrap();
        let point = ec
            .public_key()
            .to_bytes(
                &group,
                openssl::ec::PointConversionForm::UNCOMPRESSED,
                &mut ctx,
            )
            .unwrap();
        let mut key = Vec::new();
        put_string(&mut key, b"ecdsa-sha2-nistp256");
        put_string(&mut key, b"nistp256");
        put_string(&mut key, &point);
        let digest = openssl::hash::hash(MessageDigest::sha256(), data).unwrap();
        let raw = EcdsaSig::sign(&digest, &ec).unwrap();
        let mut body = Vec::new();
        put_string(&mut body, &mpint(&raw.r().to_vec()));
        put_string(&mut body, &mpint(&raw.s().to_vec()));
        let mut sig = Vec::new();
        put_string(&mut sig, b"ecdsa-sha2-nistp256");
        put_string(&mut sig, &body);
        assert_eq!(verify(&key, &sig, data), Ok(()));
        assert_eq!(verify(&key, &sig, b"y"), Err(SignatureError::Invalid));
    }

    /// A positive mpint: a zero byte first when the top bit is set.
    fn mpint(bytes: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        if bytes.first().is_some_and(|b| b & 0x80 != 0) {
            out.push(0);
        }
        out.extend_from_slice(bytes);
        out
    }
}
