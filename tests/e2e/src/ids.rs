//! Identifiers in the formats the faked services use, without a random-number dependency:
//! SHA-256 of a per-process seed and a counter.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use sha2::{Digest, Sha256};

static COUNTER: AtomicU64 = AtomicU64::new(0);

fn seed() -> u128 {
    let now = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_nanos());
    now ^ (u128::from(std::process::id()) << 64)
}

/// 32 bytes that differ on every call.
pub fn random_bytes() -> [u8; 32] {
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let mut h = Sha256::new();
    h.update(seed().to_le_bytes());
    h.update(n.to_le_bytes());
    h.finalize().into()
}

/// 32 lowercase hex characters (Cloudflare record, zone and account IDs).
pub fn hex32() -> String {
    hex::encode(&random_bytes()[..16])
}

/// A version-4 UUID (Cloudflare tunnel IDs).
pub fn uuid_v4() -> String {
    let mut b = random_bytes();
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let h = hex::encode(&b[..16]);
    format!("{}-{}-{}-{}-{}", &h[0..8], &h[8..12], &h[12..16], &h[16..20], &h[20..32])
}

/// A unique lowercase suffix for test object names.
pub fn suffix(len: usize) -> String {
    let h = hex32();
    h[..len.min(h.len())].to_owned()
}

#[cfg(test)]
mod tests {
    #[test]
    fn formats() {
        let u = super::uuid_v4();
        assert_eq!(u.len(), 36);
        assert_eq!(&u[14..15], "4");
        assert_ne!(super::hex32(), super::hex32());
    }
}
