-- round_validation: one row per round with what the validation checks read (REFERENCE §6
-- "Round insights: Validation"): the round's completeness, length and duration
-- (gold.fact_rounds), its fixes with and without a pace (gold.round_fix_profile) and how it moved
-- over the course (gold.round_progression; NULL when the round has no progression row). The
-- validation and course pages read this one table instead of joining the three per request, and
-- a date range narrows it by its own round_date_local. The thresholds of the checks stay with
-- the page (src/web/lakehouse/validation.rs), which states them.
SELECT
    f.course_id,
    f.round_id,
    f.ingest_date,
    f.round_date_local,
    f.is_complete,
    f.is_nine_hole,
    f.round_duration_minutes,
    f.fix_count,
    f.holes_played,
    q.non_padding_rows,
    q.n_missing_pace,
    p.progression_class,
    p.hole_backward_steps,
    p.hole_skip_steps,
    p.section_backward_steps
FROM gold.fact_rounds AS f
LEFT JOIN gold.round_progression AS p
  ON p.course_id = f.course_id
 AND p.round_id = f.round_id
LEFT JOIN gold.round_fix_profile AS q
  ON q.course_id = f.course_id
 AND q.round_id = f.round_id
