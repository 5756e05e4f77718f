-- course_hole_pace_daily: time and pace on each hole, per course, local round date, nine and
-- whether the round played two nines or more (multi_nine: the loop-course comparison reads only
-- those). One row per (course_id, round_date_local, hole_number, nine_number, multi_nine), so the
-- pace page reads a few thousand rows instead of one per round and hole, and a date range (the
-- UI's filter on round_date_local) narrows it directly.
-- Sums are of integers (milliseconds), divided by the reader once: the result does not depend on
-- the order rows are added in, and adding days up stays exact. rounds counts the group's rounds;
-- hole_rounds the rounds that played the hole that day on any nine (a loop course's round plays
-- hole 1 twice), the same on every row of a (course_id, round_date_local, hole_number).
WITH holes AS (
    SELECT
        course_id,
        round_date_local,
        hole_number,
        nine_number,
        COALESCE(nines_played, 0) >= 2 AS multi_nine,
        round_id,
        duration_sec,
        avg_pace_sec,
        max_pace_sec
    FROM gold.fact_round_hole_performance
    WHERE duration_sec > 0
      AND round_date_local IS NOT NULL
),
per_hole_day AS (
    SELECT course_id, round_date_local, hole_number, COUNT(DISTINCT round_id) AS hole_rounds
    FROM holes
    GROUP BY course_id, round_date_local, hole_number
)
SELECT
    g.course_id,
    g.round_date_local,
    g.hole_number,
    g.nine_number,
    g.multi_nine,
    g.rounds,
    d.hole_rounds,
    g.duration_ms_sum,
    g.duration_count,
    g.pace_ms_sum,
    g.pace_count,
    g.max_pace_sec
FROM (
    SELECT
        course_id,
        round_date_local,
        hole_number,
        nine_number,
        multi_nine,
        COUNT(DISTINCT round_id) AS rounds,
        SUM(CAST(ROUND(duration_sec * 1000) AS BIGINT)) AS duration_ms_sum,
        COUNT(duration_sec) AS duration_count,
        SUM(CAST(ROUND(avg_pace_sec * 1000) AS BIGINT)) AS pace_ms_sum,
        COUNT(avg_pace_sec) AS pace_count,
        MAX(max_pace_sec) AS max_pace_sec
    FROM holes
    GROUP BY course_id, round_date_local, hole_number, nine_number, multi_nine
) AS g
JOIN per_hole_day AS d
  ON d.course_id = g.course_id
 AND d.round_date_local = g.round_date_local
 AND d.hole_number = g.hole_number
