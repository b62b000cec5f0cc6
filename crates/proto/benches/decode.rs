//! Throughput of the incremental stream decoder: many 464-byte CPU_POWER
//! records fed in 4 KiB read-sized chunks (so most records are decoded in
//! place and about one in nine straddles two reads), reported in records
//! per second. Reports, never asserts.

use std::hint::black_box;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use vmpower_proto::layout::encode_request_record;
use vmpower_proto::stream::RecordStream;
use vmpower_proto::{CoreType, Layout, Request, RequestBody, ScalingUnit, VmName};

const RECORDS: usize = 10_000;
const READ_SIZE: usize = 4096;

fn stream_bytes() -> Vec<u8> {
    let mut bytes = Vec::with_capacity(RECORDS * Layout::Current.record_len());
    for i in 0..RECORDS {
        let req = Request {
            vm_name: VmName::new("bench-vm").expect("short name"),
            body: RequestBody::Power {
                resource_id: u64::try_from(i % 8).expect("small"),
                core_type: CoreType::Virtual,
                unit: if i % 2 == 0 {
                    ScalingUnit::ScaleUp
                } else {
                    ScalingUnit::ScaleDown
                },
            },
        };
        let rec = encode_request_record(&req, Layout::Current).expect("encodable");
        bytes.extend_from_slice(&rec);
    }
    bytes
}

fn bench_stream(c: &mut Criterion) {
    let bytes = stream_bytes();
    let mut group = c.benchmark_group("stream");
    group.throughput(Throughput::Elements(u64::try_from(RECORDS).expect("fits")));
    group.bench_function("cpu_power_464B_in_4KiB_reads", |b| {
        b.iter(|| {
            let mut stream = RecordStream::new(Layout::Current);
            let mut ok = 0usize;
            for chunk in bytes.chunks(READ_SIZE) {
                let mut input = black_box(chunk);
                while let Some(frame) = stream.next_frame(&mut input) {
                    ok += usize::from(frame.request.is_ok());
                }
            }
            black_box(ok)
        });
    });
    group.finish();
}

criterion_group!(benches, bench_stream);
criterion_main!(benches);
