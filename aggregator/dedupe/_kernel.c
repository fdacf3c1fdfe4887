/* MinHash signatures and LSH band keys of one normalised text, in one call.
 *
 * The compiled twin of aggregator/dedupe/minhash.py's numpy path and of lsh.band_keys_of: the
 * same shingle hashes, permutations and bands (their definitions are there), the same values.
 * It is built at install when a C compiler is at hand; without one, minhash.py computes them
 * with numpy. tests/test_minhash_reference.py holds both to a plain-Python reference.
 *
 * numpy pays a pass through memory per operation over the (permutations x shingles) matrix;
 * here each shingle's products stay in registers, and the buffers are one allocation.
 */

#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>
#include <string.h>

#define SHINGLE_CHARS 5
#define FOLD 0x100000001B3ULL

/* Permutations whose minima stay in registers while every shingle passes by. The defaults
 * below can be overridden with -D, for benchmarks/minhash.py --kernel-variants. */
#ifndef PERMUTATION_BLOCK
#define PERMUTATION_BLOCK 32
#endif

/* x86-64's baseline (SSE2) has no 32-bit vector multiply: the minimum loop gets a clone for
 * SSE4.1 and one for AVX2, picked at load time (benchmarks/README.md has what each gains).
 * Clones need ifunc support, which glibc has. */
#ifndef VECTOR_CLONE_TARGETS
#define VECTOR_CLONE_TARGETS "default", "arch=x86-64-v2", "avx2"
#endif
#if defined(__GNUC__) && defined(__x86_64__) && defined(__GLIBC__)
#define VECTOR_CLONES __attribute__((target_clones(VECTOR_CLONE_TARGETS)))
#else
#define VECTOR_CLONES
#endif

static inline uint64_t
fmix64(uint64_t value)
{
    value ^= value >> 33;
    value *= 0xFF51AFD7ED558CCDULL;
    value ^= value >> 33;
    value *= 0xC4CEB9FE1A85EC53ULL;
    return value ^ (value >> 33);
}

/* The 32-bit hash of the 5-gram starting at each character, in text order. */
static void
shingle_hashes(PyObject *text, Py_ssize_t count, uint32_t *hashes)
{
    const int kind = PyUnicode_KIND(text);
    const void *data = PyUnicode_DATA(text);
    for (Py_ssize_t start = 0; start < count; start++) {
        uint64_t folded = 0;
        for (Py_ssize_t offset = 0; offset < SHINGLE_CHARS; offset++) {
            folded = folded * FOLD + PyUnicode_READ(kind, data, start + offset);
        }
        hashes[start] = (uint32_t)(fmix64(folded) >> 32);
    }
}

/* minima[j] = min(minima[j], min over hashes of (a[j] * x + b[j]) mod 2**32). */
VECTOR_CLONES static void
minimise(const uint32_t *hashes, Py_ssize_t count, const uint32_t *a, const uint32_t *b,
         uint32_t *minima, Py_ssize_t permutations)
{
    for (Py_ssize_t first = 0; first < permutations; first += PERMUTATION_BLOCK) {
        uint32_t block_a[PERMUTATION_BLOCK], block_b[PERMUTATION_BLOCK];
        uint32_t block_minima[PERMUTATION_BLOCK];
        memcpy(block_a, a + first, sizeof block_a);
        memcpy(block_b, b + first, sizeof block_b);
        memcpy(block_minima, minima + first, sizeof block_minima);
        for (Py_ssize_t i = 0; i < count; i++) {
            const uint32_t x = hashes[i];
            for (int j = 0; j < PERMUTATION_BLOCK; j++) {
                const uint32_t value = block_a[j] * x + block_b[j];
                block_minima[j] = value < block_minima[j] ? value : block_minima[j];
            }
        }
        memcpy(minima + first, block_minima, sizeof block_minima);
    }
}

/* How many distinct values `values` holds; sorts it, with `scratch` as big. A radix sort:
 * linear whatever the values, so a text crafted to collide costs no more than any other. */
static Py_ssize_t
count_distinct(uint32_t *values, uint32_t *scratch, Py_ssize_t count)
{
    Py_ssize_t offsets[4][256] = {{0}};
    for (Py_ssize_t i = 0; i < count; i++) {
        for (int digit = 0; digit < 4; digit++) {
            offsets[digit][(values[i] >> (8 * digit)) & 0xFF]++;
        }
    }
    uint32_t *from = values, *to = scratch;
    for (int digit = 0; digit < 4; digit++) {
        Py_ssize_t total = 0;
        for (int bucket = 0; bucket < 256; bucket++) {
            const Py_ssize_t size = offsets[digit][bucket];
            offsets[digit][bucket] = total;
            total += size;
        }
        for (Py_ssize_t i = 0; i < count; i++) {
            to[offsets[digit][(from[i] >> (8 * digit)) & 0xFF]++] = from[i];
        }
        uint32_t *sorted = to;
        to = from;
        from = sorted;
    }
    Py_ssize_t distinct = count > 0;
    for (Py_ssize_t i = 1; i < count; i++) {
        distinct += from[i] != from[i - 1];
    }
    return distinct;
}

static PyObject *
unsigned_tuple(const uint32_t *values, Py_ssize_t count)
{
    PyObject *tuple = PyTuple_New(count);
    for (Py_ssize_t i = 0; tuple != NULL && i < count; i++) {
        PyObject *value = PyLong_FromUnsignedLong(values[i]);
        if (value == NULL) {
            Py_CLEAR(tuple);
            break;
        }
        PyTuple_SET_ITEM(tuple, i, value);
    }
    return tuple;
}

/* One signed 64-bit key per whole band of `values` (see aggregator/dedupe/lsh.py). */
static PyObject *
band_keys(const uint32_t *values, Py_ssize_t count, Py_ssize_t rows)
{
    const Py_ssize_t bands = count / rows;
    PyObject *tuple = PyTuple_New(bands);
    for (Py_ssize_t band = 0; tuple != NULL && band < bands; band++) {
        uint64_t key = (uint64_t)band + 1;
        for (Py_ssize_t row = 0; row < rows; row++) {
            key = key * FOLD + values[band * rows + row];
        }
        key = fmix64(key);
        int64_t signed_key;
        memcpy(&signed_key, &key, sizeof key); /* two's complement, as numpy's view is */
        PyObject *item = PyLong_FromLongLong(signed_key);
        if (item == NULL) {
            Py_CLEAR(tuple);
            break;
        }
        PyTuple_SET_ITEM(tuple, band, item);
    }
    return tuple;
}

PyDoc_STRVAR(fingerprint_doc,
             "fingerprint(normalised, a, b, lead_shingles, lead_permutations, rows_per_band, /)\n"
             "--\n\n"
             "(minhash, shingles, lead, bands) of a normalised text of at least 5 characters:\n"
             "the minimum of (a*x + b) mod 2**32 over its 5-gram hashes x for each (a, b) of\n"
             "the uint32 buffers a and b, the number of distinct hashes, the first\n"
             "lead_permutations minima over its first lead_shingles 5-grams only, and the band\n"
             "keys of the minima followed by the lead's, rows_per_band values a band.");

static PyObject *
fingerprint(PyObject *module, PyObject *args)
{
    PyObject *text;
    Py_buffer a, b;
    Py_ssize_t lead_shingles, lead_permutations, rows_per_band;
    if (!PyArg_ParseTuple(args, "Uy*y*nnn:fingerprint", &text, &a, &b, &lead_shingles,
                          &lead_permutations, &rows_per_band)) {
        return NULL;
    }
    PyObject *result = NULL;
    uint32_t *memory = NULL;
    const Py_ssize_t count = PyUnicode_GET_LENGTH(text) - SHINGLE_CHARS + 1;
    const Py_ssize_t permutations = a.len / (Py_ssize_t)sizeof(uint32_t);
    if (count < 1 || a.len != b.len || a.len % (Py_ssize_t)sizeof(uint32_t) != 0 ||
        permutations % PERMUTATION_BLOCK != 0 || lead_permutations < 0 ||
        lead_permutations > permutations || lead_shingles < 1 || rows_per_band < 1) {
        PyErr_SetString(PyExc_ValueError,
                        "fingerprint needs 5 characters, a and b of one length (a multiple of "
                        "32 uint32), and lead and band sizes that fit them");
        goto done;
    }
    /* hashes, the sort's scratch, a, b, then the minima followed by the lead's */
    memory = PyMem_New(uint32_t, 2 * count + 3 * permutations + lead_permutations);
    if (memory == NULL) {
        PyErr_NoMemory();
        goto done;
    }
    uint32_t *hashes = memory, *scratch = memory + count;
    uint32_t *a_values = scratch + count, *b_values = a_values + permutations;
    uint32_t *minima = b_values + permutations, *lead = minima + permutations;
    memcpy(a_values, a.buf, a.len);
    memcpy(b_values, b.buf, b.len);
    for (Py_ssize_t j = 0; j < permutations; j++) {
        minima[j] = UINT32_MAX;
    }

    shingle_hashes(text, count, hashes);
    /* After the lead's shingles the first minima are the lead's: a snapshot, then the rest. */
    const Py_ssize_t leading = lead_shingles < count ? lead_shingles : count;
    minimise(hashes, leading, a_values, b_values, minima, permutations);
    memcpy(lead, minima, lead_permutations * sizeof(uint32_t));
    minimise(hashes + leading, count - leading, a_values, b_values, minima, permutations);
    const Py_ssize_t shingles = count_distinct(hashes, scratch, count);

    result = Py_BuildValue("(NnNN)", unsigned_tuple(minima, permutations), shingles,
                           unsigned_tuple(lead, lead_permutations),
                           band_keys(minima, permutations + lead_permutations, rows_per_band));
done:
    PyMem_Free(memory);
    PyBuffer_Release(&a);
    PyBuffer_Release(&b);
    return result;
}

static PyMethodDef methods[] = {
    {"fingerprint", fingerprint, METH_VARARGS, fingerprint_doc},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef kernel_module = {
    PyModuleDef_HEAD_INIT,
    .m_name = "aggregator.dedupe._kernel",
    .m_doc = "MinHash signatures and LSH band keys of a normalised text (see minhash.py).",
    .m_size = 0,
    .m_methods = methods,
};

PyMODINIT_FUNC
PyInit__kernel(void)
{
    return PyModuleDef_Init(&kernel_module);
}
