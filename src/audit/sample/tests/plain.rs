//! Test code only: the shortcut where `default_rate` alone decides
//! ([`super::super::plainly_out`]), against the sampler it stands in for.
use super::*;

/// The shortcut where `default_rate` alone decides lets go exactly the
/// requests the sampler lets go whose status settles they were not denied,
/// and nothing it would keep.
#[test]
fn plainly_out_agrees_with_decide_under_the_default_rate_alone() {
    let statuses = [
        None,
        Some(200),
        Some(204),
        Some(302),
        Some(399),
        Some(400),
        Some(401),
        Some(403),
        Some(404),
        Some(500),
        Some(503),
    ];
    for rate in [0.0, 0.01, 0.3, 0.999] {
        let mut s = sampler(rate, 0, vec![]);
        let (mut out, mut by_sampler) = (0, 0);
        for i in 0..2000 {
            let key = format!("req-{i}");
            for status in statuses {
                let denied = matches!(status, Some(401 | 403));
                let f = Facts {
                    status,
                    always_keep: denied,
                    ..facts()
                };
                let verdict = s.decide(&f, Some(key.as_bytes()), 0.5, 0);
                let shortcut = plainly_out(rate, status, Some(key.as_bytes()));
                if shortcut {
                    out += 1;
                    assert!(
                        !verdict.keep,
                        "{key} {status:?} at {rate}: kept by the sampler"
                    );
                }
                if !verdict.keep && matches!(status, Some(200..=399)) {
                    by_sampler += 1;
                    assert!(
                        shortcut,
                        "{key} {status:?} at {rate}: not let go by the shortcut"
                    );
                }
            }
            // Without a key the random draw decides: never the shortcut.
            assert!(!plainly_out(rate, Some(200), None));
        }
        assert_eq!(out, by_sampler);
    }
}
