# Sourced by the device scripts (device_check.sh, device/*_study.sh), from the
# repository root, after they set OUT: installs the carried wheels of .whl/ (the
# Keras wheel and its missing dependencies; INSTALL_WHEELS=0 skips them) into
# /tmp/site with $PY (default python3), puts this checkout on PYTHONPATH, selects
# KERAS_BACKEND (default jax) with a persistent JAX compilation cache, and writes
# what the machine has to $OUT/device.txt.
PY=${PY:-python3}
if [ -d .whl ] && [ "${INSTALL_WHEELS:-1}" = 1 ]; then
  $PY -m pip install -q --no-index --no-deps --no-compile --no-cache-dir \
    --upgrade --target /tmp/site .whl/*.whl || exit 1
  export PYTHONPATH=/tmp/site:$PWD${PYTHONPATH:+:$PYTHONPATH}
else
  export PYTHONPATH=$PWD${PYTHONPATH:+:$PYTHONPATH}
fi
export KERAS_BACKEND=${KERAS_BACKEND:-jax} XLA_PYTHON_CLIENT_PREALLOCATE=false
export PYTHONUNBUFFERED=1
export JAX_COMPILATION_CACHE_DIR=/tmp/jaxcache
export JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS=0
export JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES=0
{
  date -u; nvidia-smi -L 2>&1; nproc
  $PY -c "import keras; print('keras', keras.__version__, keras.backend.backend())"
  if [ "$KERAS_BACKEND" = jax ]; then
    $PY -c "import jax; print('jax', jax.__version__, jax.devices())"
  fi
} > "$OUT/device.txt" 2>&1
cat "$OUT/device.txt"
