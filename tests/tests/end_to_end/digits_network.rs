//! The trained digits network (from ./dev setup), loaded from its model
//! folder like any user model, on the 1,000 held-out digits it never saw:
//! the bar is 98%.

use lens_tests::{load_kit, repo_root};
use lens_worker::digits::{mnist, train, MNIST_FILE};

#[test]
fn held_out_accuracy_is_at_least_98_percent() {
    let kit = load_kit();
    let split = mnist::load_split(&repo_root().join("data").join(MNIST_FILE)).unwrap();
    assert_eq!(split.held_out.len(), 1000);
    assert_eq!(split.train.len(), 4000);
    assert_eq!(
        kit.sampler().len(),
        4000,
        "the sampler draws from training digits only"
    );
    let accuracy = train::accuracy(kit.classifier(), &split.held_out);
    assert!(accuracy >= 0.98, "held-out accuracy {accuracy}");
}

#[test]
fn presets_are_held_out_digits_one_per_class() {
    let kit = load_kit();
    let split = mnist::load_split(&repo_root().join("data").join(MNIST_FILE)).unwrap();
    let labels: Vec<u8> = kit.presets.iter().map(|(l, _)| *l).collect();
    assert_eq!(labels, (0..10).collect::<Vec<u8>>());
    for (label, pixels) in &kit.presets {
        let in_held_out = (0..split.held_out.len()).any(|i| {
            split.held_out.labels[i] == *label && split.held_out.image(i) == pixels.as_slice()
        });
        let in_train = (0..split.train.len()).any(|i| split.train.image(i) == pixels.as_slice());
        assert!(in_held_out && !in_train, "preset {label}");
    }
}
