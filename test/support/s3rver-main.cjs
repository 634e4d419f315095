/*
 * Starts s3rver (its own command line, unchanged) with one fix: with a delimiter, its filesystem store stops
 * walking at the first folder below the prefix, so a key two folders down ({source}/2026/12/…) never shows as
 * the common prefix {source}/2026/ that S3 and moto return. Here a delimited listing lists every key under the
 * prefix and folds them into common prefixes as S3 does (no truncation: the tests' listings are small).
 */
'use strict';
const FilesystemStore = require('s3rver/lib/stores/filesystem');

const listObjects = FilesystemStore.prototype.listObjects;
FilesystemStore.prototype.listObjects = async function delimitedAsS3(bucket, options) {
  const { delimiter = '', prefix = '' } = options;
  if (!delimiter) return listObjects.call(this, bucket, options);
  const all = await listObjects.call(this, bucket, { ...options, delimiter: '', maxKeys: Infinity });
  const commonPrefixes = new Set();
  const objects = all.objects.filter((object) => {
    const idx = object.key.slice(prefix.length).indexOf(delimiter);
    if (idx === -1) return true;
    commonPrefixes.add(object.key.slice(0, prefix.length + idx + delimiter.length));
    return false;
  });
  return { objects, commonPrefixes: [...commonPrefixes].sort(), isTruncated: false };
};

require('s3rver/bin/s3rver.js');
