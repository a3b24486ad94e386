//! The prost codec with small per-call buffers, and a decoder that answers a message that
//! does not decode as the caller's mistake. build.rs points the generated service code at
//! [`SmallBufferCodec`].
//!
//! tonic gives every call an encode buffer of 8 KiB by default, held for the life of the
//! call. A watch stream lives for hours and mostly sleeps, so with tens of thousands of
//! open watches those buffers would dominate the server's memory. Messages here are small;
//! a buffer that starts at 1 KiB grows when a large one (a big template) comes by.

use std::marker::PhantomData;

use prost::Message;
use tonic::codec::{BufferSettings, Codec, DecodeBuf, Decoder};
use tonic::{Code, Status};
use tonic_prost::{ProstCodec, ProstDecoder, ProstEncoder};
use tonic_types::{ErrorDetails, StatusExt};

/// Initial size of each call's encode and decode buffer.
const BUFFER_BYTES: usize = 1024;
/// Encoded bytes after which a stream yields to the transport (tonic's default).
const YIELD_THRESHOLD: usize = 32 * 1024;

/// [`ProstCodec`] with 1 KiB buffers (`BUFFER_BYTES`).
#[derive(Debug, Clone)]
pub struct SmallBufferCodec<T, U>(PhantomData<(T, U)>);

impl<T, U> Default for SmallBufferCodec<T, U> {
    fn default() -> Self {
        Self(PhantomData)
    }
}

impl<T, U> Codec for SmallBufferCodec<T, U>
where
    T: Message + Send + 'static,
    U: Message + Default + Send + 'static,
{
    type Encode = T;
    type Decode = U;
    type Encoder = ProstEncoder<T>;
    type Decoder = CheckedDecoder<U>;

    fn encoder(&mut self) -> Self::Encoder {
        ProstCodec::<T, U>::raw_encoder(BufferSettings::new(BUFFER_BYTES, YIELD_THRESHOLD))
    }

    fn decoder(&mut self) -> Self::Decoder {
        CheckedDecoder(ProstCodec::<T, U>::raw_decoder(BufferSettings::new(
            BUFFER_BYTES,
            YIELD_THRESHOLD,
        )))
    }
}

/// The prost decoder, but a message that does not decode is the caller's mistake:
/// INVALID_ARGUMENT with ErrorInfo reason `MALFORMED_MESSAGE`, not tonic's INTERNAL.
#[derive(Debug)]
pub struct CheckedDecoder<U>(ProstDecoder<U>);

impl<U: Message + Default> Decoder for CheckedDecoder<U> {
    type Item = U;
    type Error = Status;

    fn decode(&mut self, buf: &mut DecodeBuf<'_>) -> Result<Option<U>, Status> {
        self.0.decode(buf).map_err(|status| {
            if status.code() != Code::Internal {
                return status;
            }
            let message = format!("the message does not decode: {}", status.message());
            Status::with_error_details(
                Code::InvalidArgument,
                message,
                ErrorDetails::with_error_info(
                    "MALFORMED_MESSAGE",
                    super::ERROR_DOMAIN,
                    std::collections::HashMap::new(),
                ),
            )
        })
    }

    fn buffer_settings(&self) -> BufferSettings {
        self.0.buffer_settings()
    }
}
