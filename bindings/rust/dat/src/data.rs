//! Data sets: IDX / CIFAR / .npy, shards, shuffles, batches.
use std::ffi::CString;
use std::marker::PhantomData;
use std::ptr;

use crate::{check, cstring, len_i32, sys, Context, DatasetOptions, Result, Tensor};

/// A data set that serves this rank's shard, epoch by epoch, in batches of
/// float32 images in [0, 1] and int32 labels.
pub struct Dataset<'c> {
    raw: *mut sys::dat_dataset,
    batch_size: i32,
    _ctx: PhantomData<&'c Context>,
}

impl<'c> Dataset<'c> {
    /// Opens a data set at epoch 0, batch 0 (dat_dataset_open). The path fields
    /// of `opts` are replaced by `images`, `labels` and `extra`, and its class
    /// subset by `classes`; set the others (format, batch_size, seed, rank,
    /// world_size, limit, ...) in `opts`.
    pub fn open(ctx: &'c Context, opts: &DatasetOptions, images: &str, labels: Option<&str>,
                extra: &[&str], classes: &[i32]) -> Result<Dataset<'c>> {
        let images = cstring(images)?;
        let labels = match labels {
            Some(l) => Some(cstring(l)?),
            None => None,
        };
        let extra: Vec<CString> = extra.iter().map(|e| cstring(e)).collect::<Result<_>>()?;
        let extra_ptrs: Vec<*const std::os::raw::c_char> =
            extra.iter().map(|e| e.as_ptr()).collect();
        let mut o = *opts;
        o.images_path = images.as_ptr();
        o.labels_path = labels.as_ref().map(|l| l.as_ptr()).unwrap_or(ptr::null());
        o.extra_paths = if extra.is_empty() { ptr::null() } else { extra_ptrs.as_ptr() };
        o.num_extra_paths = len_i32(extra.len(), "Dataset::open: extra.len()")?;
        o.classes = if classes.is_empty() { ptr::null() } else { classes.as_ptr() };
        o.num_subset_classes = len_i32(classes.len(), "Dataset::open: classes.len()")?;
        let mut raw = ptr::null_mut();
        check(unsafe { sys::dat_dataset_open(&mut raw, ctx.as_ptr(), &o) })?;
        Ok(Dataset { raw, batch_size: o.batch_size, _ctx: PhantomData })
    }

    /// Samples per full batch, as opened.
    pub fn batch_size(&self) -> i32 {
        self.batch_size
    }

    /// Samples this handle serves per epoch: its shard (dat_dataset_num_samples).
    pub fn num_samples(&self) -> Result<i64> {
        let mut n = 0;
        check(unsafe { sys::dat_dataset_num_samples(self.raw, &mut n) })?;
        Ok(n)
    }

    /// (channels, height, width) of a sample, as served (dat_dataset_sample_shape).
    pub fn sample_shape(&self) -> Result<(i32, i32, i32)> {
        let (mut c, mut h, mut w) = (0, 0, 0);
        check(unsafe { sys::dat_dataset_sample_shape(self.raw, &mut c, &mut h, &mut w) })?;
        Ok((c, h, w))
    }

    /// Number of classes of the labels served; 0 for unlabeled data without
    /// `num_classes` in the options (dat_dataset_num_classes).
    pub fn num_classes(&self) -> Result<i32> {
        let mut n = 0;
        check(unsafe { sys::dat_dataset_num_classes(self.raw, &mut n) })?;
        Ok(n)
    }

    /// Batches per epoch, the last one short unless `drop_last`
    /// (dat_dataset_batches_per_epoch).
    pub fn batches_per_epoch(&self) -> Result<i64> {
        let mut n = 0;
        check(unsafe { sys::dat_dataset_batches_per_epoch(self.raw, &mut n) })?;
        Ok(n)
    }

    /// Starts epoch `epoch` at its first batch; call it at the start of every
    /// epoch after the first (dat_dataset_set_epoch).
    pub fn set_epoch(&mut self, epoch: i64) -> Result<()> {
        check(unsafe { sys::dat_dataset_set_epoch(self.raw, epoch) })
    }

    /// Writes the next batch into x (and y); its sample count, 0 at the epoch's end
    /// (dat_dataset_next_batch). Rows past the count are set to 0 in x, -1 in y.
    pub fn next_batch(&mut self, x: &mut Tensor, y: Option<&mut Tensor>) -> Result<i32> {
        let mut n = 0;
        let y = y.map(|t| t.as_ptr()).unwrap_or(ptr::null_mut());
        check(unsafe { sys::dat_dataset_next_batch(self.raw, x.as_ptr(), y, &mut n) })?;
        Ok(n)
    }

    /// (epoch, batch) of the next batch (dat_dataset_get_position).
    pub fn position(&self) -> Result<(i64, i64)> {
        let (mut e, mut b) = (0, 0);
        check(unsafe { sys::dat_dataset_get_position(self.raw, &mut e, &mut b) })?;
        Ok((e, b))
    }

    /// Moves to batch `batch` of epoch `epoch`; the batches that follow are those
    /// an uninterrupted run serves from there (dat_dataset_set_position).
    pub fn set_position(&mut self, epoch: i64, batch: i64) -> Result<()> {
        check(unsafe { sys::dat_dataset_set_position(self.raw, epoch, batch) })
    }
}

impl Drop for Dataset<'_> {
    fn drop(&mut self) {
        unsafe { sys::dat_dataset_destroy(self.raw) }
    }
}
