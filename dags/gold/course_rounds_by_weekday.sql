-- course_rounds_by_weekday: one row per (course_id, weekday_number), rounds by the weekday of
-- their first fix in the course's local time (fact_rounds.round_weekday). weekday_number is ISO, 1 = Monday … 7 = Sunday, the one weekday
-- convention of tmctl (REFERENCE §8.2 #7 had two); 0 = no timestamp, "Unknown (missing timestamp)".
-- As REFERENCE §3.3; weekday names are spelled out in SQL instead of a locale-dependent format.
-- Sums gold.course_round_calendar (fact_rounds counted per course, ingest date, month and weekday).
SELECT
    course_id,
    weekday_number,
    CASE weekday_number
        WHEN 1 THEN 'Monday' WHEN 2 THEN 'Tuesday' WHEN 3 THEN 'Wednesday' WHEN 4 THEN 'Thursday'
        WHEN 5 THEN 'Friday' WHEN 6 THEN 'Saturday' WHEN 7 THEN 'Sunday'
        ELSE 'Unknown (missing timestamp)'
    END AS weekday_name,
    SUM(rounds) AS rounds
FROM gold.course_round_calendar
GROUP BY course_id, weekday_number
