-- Reports (issue #17) come with their own permission, view_reports. The Administrator and
-- Auditor system roles read them (the Auditor's review of who can read what is one of them).
update roles set permissions = array_append(permissions, 'view_reports')
where system and name in ('Administrator', 'Auditor') and not ('view_reports' = any(permissions));
