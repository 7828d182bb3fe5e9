//! A classifier that answers an input it has seen before from memory.
//!
//! The `adaptive` experiment runs the same windows several times: the full
//! map, then each budgeted map and each plain stride, whose windows are a
//! subset of the full map's. Draws are keyed by seed, window position and
//! sample, so a window's perturbed inputs are the same in every run, and
//! their logits need computing once. This roughly halves the experiment's
//! passes (PDA with S = 10 on the photos: 117,000 passes a photo for the
//! full map, about as many again for the rest).

use std::collections::hash_map::DefaultHasher;
use std::collections::HashMap;
use std::hash::Hasher;
use std::sync::{Arc, Mutex};

use tch::{Device, Kind, TchError, Tensor};

use lens_engine::engine::{Classifier, InputShape};

pub struct Memo {
    inner: Box<dyn Classifier>,
    seen: Seen,
}

/// The logits a memo remembers, by the hash of their input; shared with
/// whoever wraps the model, to forget them between experiments.
#[derive(Clone, Default)]
pub struct Seen(Arc<Mutex<HashMap<u64, Vec<f32>>>>);

impl Seen {
    /// How many distinct inputs the network has seen.
    pub fn distinct_inputs(&self) -> usize {
        self.0.lock().map_or(0, |seen| seen.len())
    }
    pub fn forget(&self) {
        if let Ok(mut seen) = self.0.lock() {
            seen.clear();
        }
    }
}

impl Memo {
    pub fn new(inner: Box<dyn Classifier>, seen: Seen) -> Self {
        Self { inner, seen }
    }
}

/// A 64-bit hash of one input's values (bit patterns, so -0.0 and 0.0
/// differ; a collision among a million inputs has odds of about 1 in 10^7).
fn key(values: &[f32]) -> u64 {
    let mut hasher = DefaultHasher::new();
    hasher.write_usize(values.len());
    for pair in values.chunks(2) {
        let high = pair.get(1).map_or(0, |v| v.to_bits() as u64);
        hasher.write_u64((pair[0].to_bits() as u64) | (high << 32));
    }
    hasher.finish()
}

impl Classifier for Memo {
    fn input_shape(&self) -> InputShape {
        self.inner.input_shape()
    }
    fn num_classes(&self) -> usize {
        self.inner.num_classes()
    }
    fn training_images(&self) -> usize {
        self.inner.training_images()
    }
    fn device(&self) -> Device {
        self.inner.device()
    }

    fn logits(&self, batch: &Tensor) -> Result<Tensor, TchError> {
        let images = batch.size()[0] as usize;
        let values = Vec::<f32>::try_from(batch.to_kind(Kind::Float).contiguous().view([-1]))?;
        let per_image = values.len() / images.max(1);
        let keys: Vec<u64> = values.chunks(per_image.max(1)).map(key).collect();
        let classes = self.inner.num_classes();
        let mut seen = self.seen.0.lock().expect("the memo's lock");
        let missing: Vec<i64> = (0..images)
            .filter(|&i| !seen.contains_key(&keys[i]))
            .map(|i| i as i64)
            .collect();
        if !missing.is_empty() {
            let index = Tensor::from_slice(&missing).to_device(batch.device());
            let logits = self.inner.logits(&batch.index_select(0, &index))?;
            let rows = Vec::<f32>::try_from(logits.to_kind(Kind::Float).contiguous().view([-1]))?;
            for (&i, row) in missing.iter().zip(rows.chunks(classes)) {
                seen.insert(keys[i as usize], row.to_vec());
            }
        }
        let mut all = Vec::with_capacity(images * classes);
        for k in &keys {
            all.extend_from_slice(&seen[k]);
        }
        Ok(Tensor::from_slice(&all)
            .view([images as i64, classes as i64])
            .to_device(self.inner.device()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A linear toy network that counts its calls' images.
    struct Counting {
        images: Arc<Mutex<usize>>,
    }

    impl Classifier for Counting {
        fn input_shape(&self) -> InputShape {
            InputShape {
                channels: 1,
                height: 1,
                width: 2,
            }
        }
        fn num_classes(&self) -> usize {
            2
        }
        fn training_images(&self) -> usize {
            1
        }
        fn device(&self) -> Device {
            Device::Cpu
        }
        fn logits(&self, batch: &Tensor) -> Result<Tensor, TchError> {
            *self.images.lock().unwrap() += batch.size()[0] as usize;
            let flat = batch.view([-1, 2]);
            Ok(Tensor::stack(
                &[
                    flat.sum_dim_intlist(1, false, Kind::Float),
                    flat.select(1, 0) * 3,
                ],
                1,
            ))
        }
    }

    #[test]
    fn a_repeated_input_is_answered_from_memory_with_the_same_logits() {
        let calls = Arc::new(Mutex::new(0));
        let seen = Seen::default();
        let memo = Memo::new(
            Box::new(Counting {
                images: calls.clone(),
            }),
            seen.clone(),
        );
        let first = Tensor::from_slice(&[1.0f32, 2.0, 3.0, 4.0]).view([2, 1, 1, 2]);
        let again = Tensor::from_slice(&[3.0f32, 4.0, 5.0, 6.0, 1.0, 2.0]).view([3, 1, 1, 2]);
        let a = Vec::<f32>::try_from(memo.logits(&first).unwrap().view([-1])).unwrap();
        let b = Vec::<f32>::try_from(memo.logits(&again).unwrap().view([-1])).unwrap();
        assert_eq!(a, vec![3.0, 3.0, 7.0, 9.0]);
        assert_eq!(b, vec![7.0, 9.0, 11.0, 15.0, 3.0, 3.0]);
        // Only [5, 6] was new in the second batch.
        assert_eq!(*calls.lock().unwrap(), 3);
        assert_eq!(seen.distinct_inputs(), 3);
        seen.forget();
        let recomputed = memo.logits(&first).unwrap();
        assert_eq!(Vec::<f32>::try_from(recomputed.view([-1])).unwrap(), a);
        assert_eq!(*calls.lock().unwrap(), 5);
    }
}
