/*
 * Sweeps over a canonical CSR matrix (sorted column indices per row, no
 * duplicates) for cellucid_nb's gene writer; see csr_kernels.py, the only
 * caller, for what each function is for and why.
 *
 * Arrays arrive through the buffer protocol as flat, C-contiguous memory; the
 * Python side checks dtypes and passes their kind: index width 4 or 8 bytes,
 * values 'f' (float32) or 'd' (float64), output 'B' (uint8 codes), 'H' (uint16
 * codes) or 'f' (float32 values). Every index read from the matrix is checked
 * before it is used, so a malformed matrix raises instead of corrupting memory.
 *
 * Quantization must give exactly numpy's codes (codecs.quantize): build with
 * -ffp-contract=off so that (v - lo) * scale + 0.5 is rounded step by step.
 * The loops release the GIL.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <math.h>
#include <stdint.h>

#define PREFETCH_ROWS 16

typedef struct {
    const void *indptr, *indices, *data;
    int64_t *cursor;
    const int64_t *local;
    const float *lo32;
    const double *lo64, *scale;
    const uint8_t *wide;
    void *out;
    Py_ssize_t n_rows, nnz, n_local, n_genes, qmax, missing;
    int64_t col_start, col_stop;
} sweep_args;

/* Return 0 on success, -1 if the matrix holds an index out of range. */
#define DEFINE_STATS(NAME, ITYPE, DTYPE)                                                    \
    static int NAME(const ITYPE *indices, const DTYPE *data, Py_ssize_t nnz, float *lo,     \
                    float *hi, int64_t *count, Py_ssize_t n_cols) {                         \
        for (Py_ssize_t p = 0; p < nnz; p++) {                                              \
            ITYPE column = indices[p];                                                      \
            if (column < 0 || (Py_ssize_t)column >= n_cols) return -1;                      \
            float value = (float)data[p];                                                   \
            count[column] += 1;                                                             \
            if (isfinite(value)) {                                                          \
                if (value < lo[column]) lo[column] = value;                                 \
                if (value > hi[column]) hi[column] = value;                                 \
            }                                                                               \
        }                                                                                   \
        return 0;                                                                           \
    }

DEFINE_STATS(stats_i4_f4, int32_t, float)
DEFINE_STATS(stats_i4_f8, int32_t, double)
DEFINE_STATS(stats_i8_f4, int64_t, float)
DEFINE_STATS(stats_i8_f8, int64_t, double)

/* STORE(g, row, value) writes one stored value of block gene g. */
#define DEFINE_SWEEP(NAME, ITYPE, DTYPE, STORE)                                             \
    static int NAME(const sweep_args *a) {                                                  \
        const ITYPE *indptr = (const ITYPE *)a->indptr;                                     \
        const ITYPE *indices = (const ITYPE *)a->indices;                                   \
        const DTYPE *data = (const DTYPE *)a->data;                                         \
        for (Py_ssize_t row = 0; row < a->n_rows; row++) {                                  \
            Py_ssize_t ahead = row + PREFETCH_ROWS;                                         \
            if (ahead < a->n_rows && a->cursor[ahead] < a->nnz)                             \
                __builtin_prefetch(&indices[a->cursor[ahead]]);                             \
            int64_t position = a->cursor[row];                                              \
            int64_t end = (int64_t)indptr[row + 1];                                         \
            if (end > a->nnz || position < 0) return -1;                                    \
            while (position < end) {                                                        \
                int64_t column = (int64_t)indices[position];                                \
                if (column >= a->col_stop) break;                                           \
                if (column >= a->col_start) {                                               \
                    int64_t gene = a->local[column - a->col_start];                         \
                    if (gene >= a->n_genes) return -1;                                      \
                    if (gene >= 0) {                                                        \
                        float value = (float)data[position];                                \
                        STORE(gene, row, value)                                             \
                    }                                                                       \
                }                                                                           \
                position++;                                                                 \
            }                                                                               \
            a->cursor[row] = position;                                                      \
        }                                                                                   \
        return 0;                                                                           \
    }

/* codecs.quantize, per value: float32 arithmetic unless the gene's range needs float64. */
#define STORE_CODE(OTYPE)                                                                   \
    {                                                                                       \
        OTYPE *out = (OTYPE *)a->out + (Py_ssize_t)gene * a->n_rows + row;                  \
        if (a->wide[gene]) {                                                                \
            double scaled = (double)value - a->lo64[gene];                                  \
            scaled = scaled * a->scale[gene];                                               \
            scaled = scaled + 0.5;                                                          \
            if (!isfinite(scaled)) *out = (OTYPE)a->missing;                                \
            else *out = (OTYPE)(scaled < 0.0 ? 0.0 : (scaled > (double)a->qmax ? (double)a->qmax : scaled)); \
        } else {                                                                            \
            float scaled = value - a->lo32[gene];                                           \
            scaled = (float)((double)scaled * a->scale[gene]);                              \
            scaled = scaled + 0.5f;                                                         \
            if (!isfinite(scaled)) *out = (OTYPE)a->missing;                                \
            else *out = (OTYPE)(scaled < 0.0f ? 0.0f : (scaled > (float)a->qmax ? (float)a->qmax : scaled)); \
        }                                                                                   \
    }
#define STORE_U8(gene, row, value) STORE_CODE(uint8_t)
#define STORE_U16(gene, row, value) STORE_CODE(uint16_t)
#define STORE_F32(gene, row, value) { ((float *)a->out)[(Py_ssize_t)gene * a->n_rows + row] = value; }

DEFINE_SWEEP(sweep_i4_f4_u8, int32_t, float, STORE_U8)
DEFINE_SWEEP(sweep_i4_f8_u8, int32_t, double, STORE_U8)
DEFINE_SWEEP(sweep_i8_f4_u8, int64_t, float, STORE_U8)
DEFINE_SWEEP(sweep_i8_f8_u8, int64_t, double, STORE_U8)
DEFINE_SWEEP(sweep_i4_f4_u16, int32_t, float, STORE_U16)
DEFINE_SWEEP(sweep_i4_f8_u16, int32_t, double, STORE_U16)
DEFINE_SWEEP(sweep_i8_f4_u16, int64_t, float, STORE_U16)
DEFINE_SWEEP(sweep_i8_f8_u16, int64_t, double, STORE_U16)
DEFINE_SWEEP(sweep_i4_f4_f32, int32_t, float, STORE_F32)
DEFINE_SWEEP(sweep_i4_f8_f32, int32_t, double, STORE_F32)
DEFINE_SWEEP(sweep_i8_f4_f32, int64_t, float, STORE_F32)
DEFINE_SWEEP(sweep_i8_f8_f32, int64_t, double, STORE_F32)

typedef int (*sweep_fn)(const sweep_args *);

static int check_length(Py_buffer *buffer, Py_ssize_t items, Py_ssize_t itemsize, const char *name) {
    if (buffer->len != items * itemsize) {
        PyErr_Format(PyExc_ValueError, "%s holds %zd bytes, expected %zd", name, buffer->len, items * itemsize);
        return -1;
    }
    return 0;
}

/* None after a loop that returned 0, else a ValueError with ``message``. */
static PyObject *none_or_error(int status, const char *message) {
    if (status) {
        PyErr_SetString(PyExc_ValueError, message);
        return NULL;
    }
    Py_RETURN_NONE;
}

static PyObject *py_column_stats(PyObject *self, PyObject *args) {
    Py_buffer indices, data, lo, hi, count;
    int index_bytes;
    int data_kind;
    if (!PyArg_ParseTuple(args, "y*y*w*w*w*iC", &indices, &data, &lo, &hi, &count, &index_bytes, &data_kind))
        return NULL;
    PyObject *result = NULL;
    int data_bytes = data_kind == 'f' ? 4 : 8;
    Py_ssize_t nnz = indices.len / (index_bytes == 4 ? 4 : 8);
    Py_ssize_t n_cols = lo.len / 4;
    if ((index_bytes != 4 && index_bytes != 8) || (data_kind != 'f' && data_kind != 'd')) {
        PyErr_SetString(PyExc_ValueError, "index width must be 4 or 8 and values 'f' or 'd'");
        goto done;
    }
    if (check_length(&indices, nnz, index_bytes, "indices") || check_length(&data, nnz, data_bytes, "data") ||
        check_length(&hi, n_cols, 4, "hi") || check_length(&count, n_cols, 8, "count"))
        goto done;
    int status;
    Py_BEGIN_ALLOW_THREADS
    if (index_bytes == 4)
        status = data_kind == 'f' ? stats_i4_f4(indices.buf, data.buf, nnz, lo.buf, hi.buf, count.buf, n_cols)
                                  : stats_i4_f8(indices.buf, data.buf, nnz, lo.buf, hi.buf, count.buf, n_cols);
    else
        status = data_kind == 'f' ? stats_i8_f4(indices.buf, data.buf, nnz, lo.buf, hi.buf, count.buf, n_cols)
                                  : stats_i8_f8(indices.buf, data.buf, nnz, lo.buf, hi.buf, count.buf, n_cols);
    Py_END_ALLOW_THREADS
    result = none_or_error(status, "the CSR matrix holds a column index outside its shape");
done:
    PyBuffer_Release(&indices); PyBuffer_Release(&data); PyBuffer_Release(&lo);
    PyBuffer_Release(&hi); PyBuffer_Release(&count);
    return result;
}

static PyObject *py_sweep(PyObject *self, PyObject *args) {
    Py_buffer indptr, indices, data, cursor, local, lo32, lo64, scale, wide, out;
    long long col_start, col_stop;
    Py_ssize_t qmax, missing;
    int index_bytes;
    int data_kind, out_kind;
    if (!PyArg_ParseTuple(args, "y*y*y*w*LLy*y*y*y*y*w*nniCC", &indptr, &indices, &data, &cursor, &col_start,
                          &col_stop, &local, &lo32, &lo64, &scale, &wide, &out, &qmax, &missing, &index_bytes,
                          &data_kind, &out_kind))
        return NULL;
    PyObject *result = NULL;
    sweep_args a;
    int data_bytes = data_kind == 'f' ? 4 : 8;
    int out_bytes = out_kind == 'B' ? 1 : (out_kind == 'H' ? 2 : 4);
    if ((index_bytes != 4 && index_bytes != 8) || (data_kind != 'f' && data_kind != 'd') ||
        (out_kind != 'B' && out_kind != 'H' && out_kind != 'f')) {
        PyErr_SetString(PyExc_ValueError, "index width must be 4 or 8, values 'f' or 'd', output 'B', 'H' or 'f'");
        goto done;
    }
    a.n_rows = cursor.len / 8;
    a.nnz = indices.len / index_bytes;
    a.n_local = local.len / 8;
    a.n_genes = a.n_rows ? out.len / out_bytes / a.n_rows : 0;
    a.col_start = col_start;
    a.col_stop = col_stop;
    a.qmax = qmax;
    a.missing = missing;
    if (check_length(&indptr, a.n_rows + 1, index_bytes, "indptr") || check_length(&indices, a.nnz, index_bytes, "indices") ||
        check_length(&data, a.nnz, data_bytes, "data") || check_length(&out, a.n_genes * a.n_rows, out_bytes, "out"))
        goto done;
    if (col_stop - col_start != a.n_local) {
        PyErr_SetString(PyExc_ValueError, "local must hold one entry per column of the block");
        goto done;
    }
    if (out_kind != 'f' && (check_length(&lo32, a.n_genes, 4, "lo32") || check_length(&lo64, a.n_genes, 8, "lo64") ||
                            check_length(&scale, a.n_genes, 8, "scale") || check_length(&wide, a.n_genes, 1, "wide")))
        goto done;
    a.indptr = indptr.buf; a.indices = indices.buf; a.data = data.buf; a.cursor = cursor.buf;
    a.local = local.buf; a.lo32 = lo32.buf; a.lo64 = lo64.buf; a.scale = scale.buf; a.wide = wide.buf;
    a.out = out.buf;
    static const sweep_fn table[3][2][2] = {
        {{sweep_i4_f4_u8, sweep_i4_f8_u8}, {sweep_i8_f4_u8, sweep_i8_f8_u8}},
        {{sweep_i4_f4_u16, sweep_i4_f8_u16}, {sweep_i8_f4_u16, sweep_i8_f8_u16}},
        {{sweep_i4_f4_f32, sweep_i4_f8_f32}, {sweep_i8_f4_f32, sweep_i8_f8_f32}},
    };
    sweep_fn fn = table[out_kind == 'B' ? 0 : (out_kind == 'H' ? 1 : 2)][index_bytes == 8][data_kind == 'd'];
    int status;
    Py_BEGIN_ALLOW_THREADS
    status = fn(&a);
    Py_END_ALLOW_THREADS
    result = none_or_error(status, "the CSR matrix is malformed (index pointer or block column out of range)");
done:
    PyBuffer_Release(&indptr); PyBuffer_Release(&indices); PyBuffer_Release(&data); PyBuffer_Release(&cursor);
    PyBuffer_Release(&local); PyBuffer_Release(&lo32); PyBuffer_Release(&lo64); PyBuffer_Release(&scale);
    PyBuffer_Release(&wide); PyBuffer_Release(&out);
    return result;
}

static PyMethodDef methods[] = {
    {"column_stats", py_column_stats, METH_VARARGS,
     "column_stats(indices, data, lo, hi, count, index_bytes, data_kind): per-column count, finite min/max."},
    {"sweep", py_sweep, METH_VARARGS,
     "sweep(indptr, indices, data, cursor, col_start, col_stop, local, lo32, lo64, scale, wide, out, qmax, "
     "missing, index_bytes, data_kind, out_kind): dense payloads of one block of columns."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "_csr_sweep", NULL, -1, methods};

PyMODINIT_FUNC PyInit__csr_sweep(void) { return PyModule_Create(&module); }
