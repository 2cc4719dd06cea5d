// Every way an ingest can discard data, named once. The ids follow Cortex/Mimir's
// discarded_samples_total "reason" label; the messages say what to fix.
// HTTP status is decided at the edge (src/distributor/push.ts), not here.

export const enum Reason {
  MissingMetricName = "missing_metric_name",
  InvalidMetricName = "metric_name_invalid",
  MaxLabelNamesPerSeries = "max_label_names_per_series",
  InvalidLabelName = "label_name_invalid",
  LabelNameTooLong = "label_name_too_long",
  LabelValueTooLong = "label_value_too_long",
  EmptyLabelValue = "label_value_empty",
  DuplicateLabelNames = "duplicate_label_names",
  LabelsNotSorted = "labels_not_sorted",
  InvalidUtf8 = "label_invalid_utf8",
  SampleTooOld = "sample_too_old",
  SampleTooFarInFuture = "sample_too_far_in_future",
  SampleOutOfOrder = "sample_out_of_order",
  SampleDuplicateTimestamp = "new_value_for_timestamp",
  SampleOutOfBounds = "sample_out_of_bounds",
  NativeHistogramsUnsupported = "native_histograms_unsupported",
  ExemplarsUnsupported = "exemplars_unsupported",
  /** The tenant's ingestion rate (ingestionRate / logIngestionRateBytes) was exceeded: the whole push is refused with 429. */
  RateLimited = "rate_limited",
  /** A new HA cluster past the tenant's haMaxClusters: the whole push is refused with 400 (Mimir's reason). */
  TooManyHaClusters = "too_many_ha_clusters",
  /** A new series past the tenant's maxGlobalSeriesPerUser (its per-shard share). */
  PerUserSeriesLimit = "per_user_series_limit",
  /** A new log stream past the tenant's maxGlobalStreamsPerUser (its per-shard share; Loki's stream_limit). */
  StreamLimit = "stream_limit",
  // Loki's discard reasons for log pushes (pkg/validation/validate.go), distributor side.
  InvalidLabels = "invalid_labels",
  MissingLabels = "missing_labels",
  LineTooLong = "line_too_long",
  GreaterThanMaxSampleAge = "greater_than_max_sample_age",
  TooFarInFuture = "too_far_in_future",
  /** A structured metadata name that is not a valid label name (Loki 3.3+ rewrites such names; we refuse them). */
  InvalidStructuredMetadata = "structured_metadata_invalid",
  /** An entry's structured metadata past maxStructuredMetadataSize (Loki's max_structured_metadata_size). */
  StructuredMetadataTooLarge = "structured_metadata_too_large",
  /** An entry with more structured metadata pairs than maxStructuredMetadataEntriesCount (Loki's max_structured_metadata_entries_count). */
  StructuredMetadataTooMany = "structured_metadata_too_many",
}

/** A discarded series or sample: the reason id and a message naming the limit and the series. */
export interface Rejection {
  reason: Reason;
  message: string;
}
