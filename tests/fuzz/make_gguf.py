#!/usr/bin/env python3
"""Seed maker for the GGUF fuzz target (scripts/fuzz-seeds.sh runs it).

  make_gguf.py model HF_DIR OUT.gguf   the checkpoint of `flxemu synth --shape
      tiny` as a llama GGUF v3 with its byte-level BPE tokenizer; tensors in
      F32 (norms), F16 (embedding), Q4_0 (attn_q), Q8_0 (other attention and
      gate/up) and BF16 (ffn_down), so every type the loader converts occurs.
      Weights are not permuted the way llama.cpp's converter permutes Q/K:
      this is a parser seed, not a faithful conversion.
  make_gguf.py spm OUT.gguf   a tokenizer-only GGUF with a small
      SentencePiece-style vocabulary (byte tokens, scores, token types).
Standard library only (no numpy)."""
import json, math, struct, sys

F32, F16, Q4_0, Q8_0, BF16 = 0, 1, 2, 8, 30


def gstr(s):
    b = s.encode() if isinstance(s, str) else s
    return struct.pack('<Q', len(b)) + b


def kv(key, vtype, payload):
    return gstr(key) + struct.pack('<I', vtype) + payload


def kv_u32(k, v): return kv(k, 4, struct.pack('<I', v))
def kv_f32(k, v): return kv(k, 6, struct.pack('<f', v))
def kv_str(k, v): return kv(k, 8, gstr(v))
def kv_bool(k, v): return kv(k, 7, struct.pack('<B', v))


def kv_arr(k, etype, items):
    body = b''.join(gstr(x) if etype == 8 else struct.pack({5: '<i', 6: '<f'}[etype], x) for x in items)
    return kv(k, 9, struct.pack('<IQ', etype, len(items)) + body)


def f16(x):
    return struct.pack('<e', max(-65504.0, min(65504.0, x)))


def quant_q8_0(xs):
    out = b''
    for i in range(0, len(xs), 32):
        blk = xs[i:i + 32]
        amax = max(abs(v) for v in blk)
        d = amax / 127 if amax else 0.0
        out += f16(d) + bytes((round(v / d) if d else 0) & 0xFF for v in blk)
    return out


def quant_q4_0(xs):
    out = b''
    for i in range(0, len(xs), 32):
        blk = xs[i:i + 32]
        m = max(blk, key=abs)
        d = m / -8 if m else 0.0
        q = [min(15, max(0, int(v / d + 8.5))) if d else 8 for v in blk]
        out += f16(d) + bytes(q[j] | (q[j + 16] << 4) for j in range(16))
    return out


def encode(xs, t):
    if t == F32: return struct.pack('<%df' % len(xs), *xs)
    if t == F16: return b''.join(f16(v) for v in xs)
    if t == BF16: return b''.join(struct.pack('<I', struct.unpack('<I', struct.pack('<f', v))[0])[2:] for v in xs)
    if t == Q8_0: return quant_q8_0(xs)
    return quant_q4_0(xs)


def read_safetensors(path):
    data = open(path, 'rb').read()
    n = struct.unpack('<Q', data[:8])[0]
    head = json.loads(data[8:8 + n])
    out = {}
    for name, e in head.items():
        if name == '__metadata__':
            continue
        a, b = e['data_offsets']
        raw = data[8 + n + a:8 + n + b]
        if e['dtype'] == 'BF16':
            xs = [struct.unpack('<f', b'\0\0' + raw[i:i + 2])[0] for i in range(0, len(raw), 2)]
        else:
            xs = list(struct.unpack('<%df' % (len(raw) // 4), raw))
        out[name] = (e['shape'], xs)
    return out


def write_gguf(path, kvs, tensors):
    align = 32
    head = b'GGUF' + struct.pack('<IQQ', 3, len(tensors), len(kvs)) + b''.join(kvs)
    blobs, infos, off = [], b'', 0
    for name, shape, t, xs in tensors:
        blob = encode(xs, t)
        ne = list(reversed(shape))   # ggml order: fastest dimension first
        infos += gstr(name) + struct.pack('<I', len(ne)) + b''.join(struct.pack('<Q', v) for v in ne)
        infos += struct.pack('<IQ', t, off)
        pad = (-len(blob)) % align
        blobs.append(blob + b'\0' * pad)
        off += len(blob) + pad
    body = head + infos
    body += b'\0' * ((-len(body)) % align)
    open(path, 'wb').write(body + b''.join(blobs))


def model(hf_dir, out):
    cfg = json.load(open(hf_dir + '/config.json'))
    tok = json.load(open(hf_dir + '/tokenizer.json'))
    w = read_safetensors(hf_dir + '/model.safetensors')
    vocab = dict(tok['model']['vocab'])
    types = {}
    for a in tok['added_tokens']:
        vocab[a['content']] = a['id']
        types[a['id']] = 3 if a['special'] else 4
    n_vocab = max(vocab.values()) + 1
    tokens = [''] * n_vocab
    for s, i in vocab.items():
        tokens[i] = s
    merges = [m if isinstance(m, str) else ' '.join(m) for m in tok['model']['merges']]
    hd = cfg['hidden_size'] // cfg['num_attention_heads']
    kvs = [
        kv_str('general.architecture', 'llama'), kv_str('general.name', 'flxemu synth tiny'),
        kv_u32('llama.context_length', cfg['max_position_embeddings']),
        kv_u32('llama.embedding_length', cfg['hidden_size']),
        kv_u32('llama.block_count', cfg['num_hidden_layers']),
        kv_u32('llama.feed_forward_length', cfg['intermediate_size']),
        kv_u32('llama.attention.head_count', cfg['num_attention_heads']),
        kv_u32('llama.attention.head_count_kv', cfg['num_key_value_heads']),
        kv_u32('llama.rope.dimension_count', hd),
        kv_f32('llama.rope.freq_base', cfg['rope_theta']),
        kv_f32('llama.attention.layer_norm_rms_epsilon', cfg['rms_norm_eps']),
        kv_u32('llama.vocab_size', n_vocab),
        kv_str('tokenizer.ggml.model', 'gpt2'), kv_str('tokenizer.ggml.pre', 'llama-bpe'),
        kv_arr('tokenizer.ggml.tokens', 8, tokens),
        kv_arr('tokenizer.ggml.token_type', 5, [types.get(i, 1) for i in range(n_vocab)]),
        kv_arr('tokenizer.ggml.merges', 8, merges),
        kv_u32('tokenizer.ggml.bos_token_id', cfg['bos_token_id']),
        kv_u32('tokenizer.ggml.eos_token_id', cfg['eos_token_id']),
        kv_bool('tokenizer.ggml.add_bos_token', 1),
    ]
    names = {'input_layernorm': ('attn_norm', F32), 'self_attn.q_proj': ('attn_q', Q4_0),
             'self_attn.k_proj': ('attn_k', Q8_0), 'self_attn.v_proj': ('attn_v', Q8_0),
             'self_attn.o_proj': ('attn_output', Q8_0), 'post_attention_layernorm': ('ffn_norm', F32),
             'mlp.gate_proj': ('ffn_gate', Q8_0), 'mlp.up_proj': ('ffn_up', Q8_0),
             'mlp.down_proj': ('ffn_down', BF16)}
    tensors = []
    for name, (shape, xs) in w.items():
        if name == 'model.embed_tokens.weight':
            tensors.append(('token_embd.weight', shape, F16, xs))
        elif name == 'model.norm.weight':
            tensors.append(('output_norm.weight', shape, F32, xs))
        elif name == 'lm_head.weight':
            tensors.append(('output.weight', shape, Q8_0, xs))
        else:
            parts = name.split('.')
            g, t = names['.'.join(parts[3:-1])]
            tensors.append(('blk.%s.%s.weight' % (parts[2], g), shape, t, xs))
    write_gguf(out, kvs, tensors)


def spm(out):
    pieces = ['<unk>', '<s>', '</s>'] + ['<0x%02X>' % b for b in range(256)]
    types = [2, 3, 3] + [6] * 256
    words = ['\u2581', 'a', 'e', 'h', 'n', 'o', 't', 'th', 'he', '\u2581t', '\u2581the', 'in', 'ing',
             '\u2581a', 'an', 'nd', '\u2581and', '\u00e9']
    pieces += words
    types += [1] * len(words)
    scores = [0.0] * 259 + [-float(i) for i in range(len(words))]
    kvs = [kv_str('general.architecture', 'llama'), kv_str('tokenizer.ggml.model', 'llama'),
           kv_arr('tokenizer.ggml.tokens', 8, pieces), kv_arr('tokenizer.ggml.scores', 6, scores),
           kv_arr('tokenizer.ggml.token_type', 5, types), kv_u32('tokenizer.ggml.bos_token_id', 1),
           kv_u32('tokenizer.ggml.eos_token_id', 2), kv_u32('tokenizer.ggml.unknown_token_id', 0)]
    write_gguf(out, kvs, [])


if __name__ == '__main__':
    if len(sys.argv) == 4 and sys.argv[1] == 'model':
        model(sys.argv[2], sys.argv[3])
    elif len(sys.argv) == 3 and sys.argv[1] == 'spm':
        spm(sys.argv[2])
    else:
        sys.exit(__doc__)
